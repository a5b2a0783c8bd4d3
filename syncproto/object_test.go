package syncproto

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Objects as the appliance writes them (appliance/internal/store's JSON
// tags), every field set: they decode into the typed objects and encode
// back to the same JSON, so central and the site read the same wire.
var wireObjects = map[string]struct{ kind, key, json string }{
	"order": {KindOrder, "o1", `{"id":"o1","action":"provision","machine_id":"m1","template":"install",` +
		`"image":"debian-12","values":{"hostname":"web1"},"efi":true}`},
	"machine": {KindMachine, "m1", `{"id":"m1","hostname":"web1.example.com","arch":"aarch64",` +
		`"interfaces":[{"name":"eth0","mac":"52:54:00:00:00:01","ip":"198.18.0.10","subnet":"boot","boot":true}],` +
		`"bmc":{"address":"198.18.1.11:623","driver":"redfish","username":"admin","password":"pw"},` +
		`"disks":[{"name":"sda","size_bytes":1000,"model":"QEMU","serial":"s1"}],"tags":["rack-1"],` +
		`"state":"ready","reason":"r"}`},
	"image": {KindImage, "debian-12", `{"name":"debian-12","type":"os","url":"http://198.18.0.1/d.raw",` +
		`"format":"raw","size_bytes":42,"sha256":"` + strings.Repeat("ab", 32) + `"}`},
	"installer": {KindImage, "inst", `{"name":"inst","type":"installer","kernel":"vmlinuz","initrd":"initrd.img","cmdline":"console=ttyS0"}`},
	"template": {KindTemplate, "install", `{"name":"install","description":"d","actions":[` +
		`{"name":"wipe","type":"disk.wipe","args":{"device":"/dev/sda"},"timeout":"2m0s","retries":1,"backoff":"5s","on_failure":"continue"},` +
		`{"name":"reboot","type":"reboot","needs":["wipe"]}]}`},
}

func TestObjectWire(t *testing.T) {
	parallel(t)
	for name, tc := range wireObjects {
		obj, err := DecodeObject(tc.kind, tc.key, json.RawMessage(tc.json))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if obj.Kind() != tc.kind || obj.Key() != tc.key {
			t.Errorf("%s: kind %s key %s", name, obj.Kind(), obj.Key())
		}
		out, err := json.Marshal(obj)
		if err != nil || string(out) != tc.json {
			t.Errorf("%s encodes to\n%s (%v), want\n%s", name, out, err, tc.json)
		}
	}
}

// TestObjectKey: an object without its key field takes the change's key;
// one that names another is refused.
func TestObjectKey(t *testing.T) {
	parallel(t)
	obj, err := DecodeObject(KindOrder, "o9", json.RawMessage(`{"action":"power_on","machine_id":"m1"}`))
	if err != nil || obj.(*Order).ID != "o9" {
		t.Errorf("an order without id: %+v, %v; want id o9", obj, err)
	}
	if _, err := DecodeObject(KindMachine, "m2", json.RawMessage(`{"id":"m1"}`)); CodeOf(err) != CodeBadMessage {
		t.Errorf("a machine named m1 under key m2: %v, want bad_message", err)
	}
}

// TestObjectValidate: every rule an object breaks is refused with a
// bad_message error naming the field.
func TestObjectValidate(t *testing.T) {
	parallel(t)
	for name, tc := range map[string]struct{ kind, json, field string }{
		"kind":                {"subnet", `{"name":"s"}`, "kind"},
		"not an object":       {KindOrder, `[1]`, ""},
		"wrong type":          {KindOrder, `{"action":7}`, "action"},
		"order action":        {KindOrder, `{"action":"explode","machine_id":"m1"}`, "action"},
		"order machine":       {KindOrder, `{"action":"power_on"}`, "machine_id"},
		"order machine name":  {KindOrder, `{"action":"power_on","machine_id":"M 1"}`, "machine_id"},
		"order template":      {KindOrder, `{"action":"provision","machine_id":"m1","image":"i","template":"-x"}`, "template"},
		"order image":         {KindOrder, `{"action":"provision","machine_id":"m1"}`, "image"},
		"order traceparent":   {KindOrder, `{"action":"power_on","machine_id":"m1","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}`, "traceparent"},
		"order zero trace":    {KindOrder, `{"action":"power_on","machine_id":"m1","traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}`, "traceparent"},
		"machine hostname":    {KindMachine, `{"hostname":"a..b"}`, "hostname"},
		"machine hostname -":  {KindMachine, `{"hostname":"-a"}`, "hostname"},
		"machine arch":        {KindMachine, `{"arch":"sparc"}`, "arch"},
		"machine state":       {KindMachine, `{"state":"gone"}`, "state"},
		"machine mac":         {KindMachine, `{"interfaces":[{"mac":"nope"}]}`, "interfaces[0].mac"},
		"machine mac twice":   {KindMachine, `{"interfaces":[{"mac":"52:54:00:00:00:01"},{"mac":"52-54-00-00-00-01"}]}`, "interfaces[1].mac"},
		"machine ip":          {KindMachine, `{"interfaces":[{"mac":"52:54:00:00:00:01","ip":"::1"}]}`, "interfaces[0].ip"},
		"machine bmc address": {KindMachine, `{"bmc":{"username":"u"}}`, "bmc.address"},
		"machine bmc host":    {KindMachine, `{"bmc":{"address":"a b"}}`, "bmc.address"},
		"machine bmc driver":  {KindMachine, `{"bmc":{"address":"10.0.0.1","driver":"telnet"}}`, "bmc.driver"},
		"machine disk":        {KindMachine, `{"disks":[{"size_bytes":1}]}`, "disks[0].name"},
		"machine tag":         {KindMachine, `{"tags":[" "]}`, "tags[0]"},
		"image type":          {KindImage, `{"type":"iso"}`, "type"},
		"image sha256":        {KindImage, `{"url":"http://h/i","format":"raw","sha256":"abc"}`, "sha256"},
		"image location":      {KindImage, `{"format":"raw"}`, "sha256"},
		"image url and file":  {KindImage, `{"format":"raw","url":"http://a/b","file":"b"}`, "url"},
		"image both":          {KindImage, `{"url":"http://h/i","file":"i","format":"raw"}`, "url"},
		"image url":           {KindImage, `{"url":"ftp://h/i","format":"raw"}`, "url"},
		"image format":        {KindImage, `{"file":"i"}`, "format"},
		"installer kernel":    {KindImage, `{"type":"installer","initrd":"i"}`, "kernel"},
		"installer initrd":    {KindImage, `{"type":"installer","kernel":"k"}`, "initrd"},
		"template actions":    {KindTemplate, `{"actions":[]}`, "actions"},
		"action name":         {KindTemplate, `{"actions":[{"type":"reboot"}]}`, "actions[0].name"},
		"action type":         {KindTemplate, `{"actions":[{"name":"a"}]}`, "actions[0].type"},
		"action twice":        {KindTemplate, `{"actions":[{"name":"a","type":"t"},{"name":"a","type":"t"}]}`, "actions[1].name"},
		"action needs":        {KindTemplate, `{"actions":[{"name":"a","type":"t","needs":["b"]}]}`, "actions[0].needs[0]"},
		"action needs itself": {KindTemplate, `{"actions":[{"name":"a","type":"t","needs":["a"]}]}`, "actions[0].needs[0]"},
		"action timeout":      {KindTemplate, `{"actions":[{"name":"a","type":"t","timeout":"-1s"}]}`, "actions[0].timeout"},
		"action backoff":      {KindTemplate, `{"actions":[{"name":"a","type":"t","backoff":"-1s"}]}`, "actions[0].backoff"},
		"action retries":      {KindTemplate, `{"actions":[{"name":"a","type":"t","retries":-1}]}`, "actions[0].retries"},
		"action duration":     {KindTemplate, `{"actions":[{"name":"a","type":"t","timeout":"5"}]}`, "actions.timeout"},
		"action on_failure":   {KindTemplate, `{"actions":[{"name":"a","type":"t","on_failure":"retry"}]}`, "actions[0].on_failure"},
	} {
		_, err := DecodeObject(tc.kind, "k1", json.RawMessage(tc.json))
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadMessage || e.Field != tc.field || e.Validate() != nil {
			t.Errorf("%s: %v, want bad_message naming %q", name, err, tc.field)
		}
	}
}

// FuzzDecodeObject: DecodeObject never panics and fails only with a
// bad_message error; what decodes encodes to JSON that decodes to the
// same object, and encodes again to the same JSON.
func FuzzDecodeObject(f *testing.F) {
	for _, tc := range wireObjects {
		f.Add(tc.kind, tc.key, []byte(tc.json))
	}
	f.Add(KindTemplate, "t", []byte(`{"actions":[{"name":"a","type":"t","timeout":5}]}`))
	f.Add(KindMachine, "m", []byte(`{"interfaces":[{"mac":"52:54:00:00:00:01","ip":"1.2.3.4"}],"hostname":"x.`))
	f.Add(KindOrder, "", []byte(`{"id":"\u0000"}`))
	f.Fuzz(func(t *testing.T, kind, key string, raw []byte) {
		obj, err := DecodeObject(kind, key, raw)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeBadMessage || e.Validate() != nil {
				t.Fatalf("DecodeObject error %v is not a valid bad_message *Error", err)
			}
			return
		}
		again, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("encode %+v: %v", obj, err)
		}
		obj2, err := DecodeObject(kind, key, again)
		if err != nil {
			t.Fatalf("DecodeObject(%s) of its own encoding: %v", again, err)
		}
		if d := cmp.Diff(obj, obj2, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("decoded again differs (-first +again):\n%s", d)
		}
		if third, err := json.Marshal(obj2); err != nil || string(third) != string(again) {
			t.Fatalf("the encoding is not stable: %s then %s (%v)", again, third, err)
		}
	})
}
