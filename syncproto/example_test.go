package syncproto_test

import (
	"encoding/json"
	"fmt"

	"github.com/outposthq/outpost/syncproto"
)

// The handshake, as central sees it: decode the site's first frame, check
// it is a hello, choose the version, answer.
func Example() {
	frame := []byte(`{"type":"hello","body":{"site":"fra-1","credential":"tok","versions":{"min":1,"max":2},` +
		`"applied_revision":41,"acked_seq":1200,"last_seq":1250}}`)
	m, err := syncproto.Decode(frame)
	if err != nil {
		fmt.Println(err) // and send syncproto.ErrorFor(err), then close
		return
	}
	hello, ok := m.(*syncproto.Hello)
	if !ok {
		fmt.Println("the first message is not a hello")
		return
	}
	fmt.Printf("%+v\n", *hello)
	v, err := syncproto.Negotiate(syncproto.Supported, hello.Versions)
	if err != nil {
		fmt.Println(err)
		return
	}
	welcome, _ := syncproto.Encode(&syncproto.Welcome{Version: v, StoredSeq: 1210, NextRevision: hello.AppliedRevision + 1,
		HeartbeatMillis: syncproto.DefaultHeartbeat.Milliseconds()})
	fmt.Printf("%s\n", welcome)
	// Output:
	// {Site:fra-1 Credential:[redacted] Versions:versions 1 to 2 AppliedRevision:41 AckedSeq:1200 LastSeq:1250 Report:<nil>}
	// {"type":"welcome","body":{"version":2,"stored_seq":1210,"next_revision":42,"heartbeat_ms":10000}}
}

func ExampleNegotiate() {
	_, err := syncproto.Negotiate(syncproto.VersionRange{Min: 1, Max: 1}, syncproto.VersionRange{Min: 2, Max: 3})
	fmt.Println(err)
	// Output:
	// syncproto: incompatible_version: no protocol version in common: central speaks version 1, the site speaks versions 2 to 3; upgrade the older side
}

func ExampleDecode() {
	for _, frame := range []string{
		`{"type":"events","body":{"first":7,"last":8,"events":[{"seq":7,"data":{"kind":"boot"}},{"seq":9,"data":{}}]}}`,
		`{"type":"subscribe","body":{}}`,
	} {
		_, err := syncproto.Decode([]byte(frame))
		reply, _ := syncproto.Encode(syncproto.ErrorFor(err))
		fmt.Printf("%s\n", reply)
	}
	// Output:
	// {"type":"error","body":{"code":"bad_message","message":"events.events[1].seq: is 9, want 8: a batch's sequences are dense and increasing from first","field":"events[1].seq"}}
	// {"type":"error","body":{"code":"bad_message","message":"type: unknown message type \"subscribe\"","field":"type"}}
}

// The site sends its outbox in batches.
func ExampleSplitEvents() {
	var outbox []syncproto.Event
	for seq := uint64(1211); seq <= 3500; seq++ {
		outbox = append(outbox, syncproto.Event{Seq: seq, Data: json.RawMessage(`{"kind":"dhcp.ack"}`)})
	}
	batches, err := syncproto.SplitEvents(outbox)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range batches {
		fmt.Println(b.First, b.Last)
	}
	// Output:
	// 1211 2210
	// 2211 3210
	// 3211 3500
}
