package console_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
)

var seqRE = regexp.MustCompile(`data-test="event-row" data-seq="(\d+)"`)
var olderRE = regexp.MustCompile(`href="/events\?before=(\d+)[^"]*" data-test="events-older"`)

// seqs reads the events page's rows' sequence numbers and its older
// link's before= (0 if it has none).
func seqs(t *testing.T, body string) ([]uint64, uint64) {
	t.Helper()
	var out []uint64
	for _, m := range seqRE.FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		out = append(out, n)
	}
	var older uint64
	if m := olderRE.FindStringSubmatch(body); m != nil {
		older, _ = strconv.ParseUint(m[1], 10, 64)
	}
	return out, older
}

func span(from, to uint64) []uint64 { // from down to to
	var out []uint64
	for s := from; s >= to && s > 0; s-- {
		out = append(out, s)
	}
	return out
}

// TestEventsPages: the events page shows the newest page of the log,
// newest first, and links to the page before it until the first event;
// a filter pages the same way; a bad limit is a clear 400.
func TestEventsPages(t *testing.T) {
	e := start(t, false)
	for i := range 250 {
		kind := "note"
		if i%10 == 0 {
			kind = "tenth"
		}
		if _, err := e.n.Site.RecordEvent(t.Context(), store.Event{Kind: kind, Message: fmt.Sprint("event ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := e.signIn(t, e.token(t, "tech", "viewer", "1h"))
	var last uint64
	_ = e.n.DB.View(func(tx *store.Tx) error { last = tx.LastEventSeq(); return nil })

	_, body := e.do(t, http.MethodGet, "/events", nil, nil, c)
	got, older := seqs(t, body)
	if diff := cmp.Diff(span(last, last-99), got); diff != "" || older != last-99 {
		t.Fatalf("first page (-want +got):\n%s\nolder link before=%d, want %d", diff, older, last-99)
	}
	_, body = e.do(t, http.MethodGet, fmt.Sprintf("/events?before=%d", older), nil, nil, c)
	got, older = seqs(t, body)
	if diff := cmp.Diff(span(last-100, last-199), got); diff != "" || older != last-199 {
		t.Errorf("second page (-want +got):\n%s\nolder link before=%d, want %d", diff, older, last-199)
	}
	_, body = e.do(t, http.MethodGet, fmt.Sprintf("/events?before=%d", older), nil, nil, c)
	if got, older = seqs(t, body); older != 0 || len(got) == 0 || got[len(got)-1] != 1 {
		t.Errorf("last page %v ends the log with a link before=%d", got, older)
	}

	_, body = e.do(t, http.MethodGet, "/events?kind=tenth&limit=10", nil, nil, c)
	got, older = seqs(t, body)
	if len(got) != 10 || older == 0 {
		t.Fatalf("filtered first page: %v, older %d; want 10 events and a link", got, older)
	}
	_, body2 := e.do(t, http.MethodGet, fmt.Sprintf("/events?before=%d&kind=tenth&limit=10", older), nil, nil, c)
	got2, _ := seqs(t, body2)
	if len(got2) != 10 || got2[0] >= got[len(got)-1] {
		t.Errorf("filtered second page %v after %v: want the 10 older tenths", got2, got)
	}

	for _, q := range []string{"limit=0", "limit=501", "limit=x", "before=-1", "since=x"} {
		resp, body := e.do(t, http.MethodGet, "/events?"+q, nil, nil, c)
		if resp.StatusCode != http.StatusBadRequest || !regexp.MustCompile(`data-test="error-message"`).MatchString(body) {
			t.Errorf("%s: %d, want 400 with the error", q, resp.StatusCode)
		}
	}
}
