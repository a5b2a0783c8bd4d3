package workflow

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestStateJSON round-trips states at every step of a run with a retry, a
// progress report and a deadline, and checks that encoding is stable.
func TestStateJSON(t *testing.T) {
	st := newState(t, install(), time.Hour)
	steps := append(imageRetrying[:4:4], start("image", 2, 3*minute), progress("image", 2, 42, `"quoted" <b>`, 4*minute), tick(time.Hour))
	for i := 0; ; i++ {
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("step %d: marshal: %v", i, err)
		}
		var got State
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("step %d: unmarshal: %v\n%s", i, err, b)
		}
		if diff := cmp.Diff(st, got); diff != "" {
			t.Fatalf("step %d: round trip (-want +got):\n%s", i, diff)
		}
		again, _ := json.Marshal(got)
		if !bytes.Equal(b, again) {
			t.Fatalf("step %d: encoding not stable:\n%s\n%s", i, b, again)
		}
		if i == len(steps) {
			break
		}
		st, _ = apply(t, st, steps[i])
	}
	if st.Status != TimedOut {
		t.Fatalf("workflow %s, want timed_out", st.Status)
	}
}

// TestStateJSONShape pins the encoding of a small state.
func TestStateJSONShape(t *testing.T) {
	p, err := NewPlan([]Action{{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/vda"}, Timeout: 90 * time.Second, Retries: 1}}, types)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := apply(t, NewState(p, time.Time{}), start("wipe", 1, 0))
	// A time in another zone is stored in UTC.
	st, _, err = Progress(st, "wipe", 1, 10, "", t0.In(time.FixedZone("CET", 3600)).Add(sec))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(st)
	want := `{"status":"running","started_at":"2026-03-01T10:00:00Z","plan":{"actions":[` +
		`{"name":"wipe","type":"disk.wipe","args":{"device":"/dev/vda"},"timeout":"1m30s","retries":1,"backoff":"5s","on_failure":"fail"}]},` +
		`"actions":[{"name":"wipe","status":"running","attempt":1,"started_at":"2026-03-01T10:00:00Z","progress":10}]}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	tr, _ := json.Marshal(tr("wipe", Running, Succeeded, 1, "ok", 0))
	if want := `{"action":"wipe","from":"running","to":"succeeded","attempt":1,"message":"ok","at":"2026-03-01T10:00:00Z"}`; string(tr) != want {
		t.Errorf("transition: got %s, want %s", tr, want)
	}
}

// TestStateJSONRefused decodes states that break the invariants.
func TestStateJSONRefused(t *testing.T) {
	st, _ := do(t, newState(t, install(), 0), imageRunning...)
	b, _ := json.Marshal(st)
	good := string(b)
	cases := map[string]struct{ old, new, err string }{
		"a cycle":              {`"needs":["wipe"]`, `"needs":["config"]`, "makes a cycle"},
		"an unknown need":      {`"needs":["wipe"]`, `"needs":["nope"]`, `no action is named "nope"`},
		"no plan":              {`"plan":{`, `"nada":{`, "state has no plan"},
		"an unknown status":    {`"status":"running","started_at"`, `"status":"paused","started_at"`, `unknown workflow status "paused"`},
		"actions out of order": {`"name":"wipe","status"`, `"name":"config","status"`, `state of action "config" in its place`},
		"an action started before its need ended": {`{"name":"config","status":"pending"}`, `{"name":"config","status":"running","attempt":1}`, "attempt 1 started while image is running"},
		"a bad duration":          {`"timeout":"1m0s"`, `"timeout":"soon"`, `duration "soon"`},
		"too many attempts":       {`"attempt":1,"started_at":"2026-03-01T10:01:00Z"`, `"attempt":4,"started_at":"2026-03-01T10:01:00Z"`, "attempt 4 of at most 3"},
		"a retry without retries": {`{"name":"wipe","status":"succeeded"`, `{"name":"wipe","not_before":"2026-03-01T10:00:00Z","status":"pending"`, "pending for retry 1 with 0 retries"},
		"finished with running":   {`"status":"running","started_at"`, `"status":"failed","reason":"x","finished_at":"2026-03-01T10:00:00Z","started_at"`, "running in a failed workflow"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			bad := strings.Replace(good, tc.old, tc.new, 1)
			if bad == good {
				t.Fatalf("%s not in %s", tc.old, good)
			}
			var got State
			err := json.Unmarshal([]byte(bad), &got)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Unmarshal = %v, want an error with %q", err, tc.err)
			}
		})
	}
	// A plan decoded from JSON is not checked against action types.
	var p Plan
	if err := json.Unmarshal([]byte(`{"actions":[{"name":"a","type":"retired.type"}]}`), &p); err != nil {
		t.Errorf("Unmarshal plan with an unknown type: %v", err)
	}
}
