package agent

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// threeSteps is a small workflow with no disk: two files then a command.
func threeSteps(t *testing.T) (dir string, actions []workflow.Action) {
	dir = t.TempDir()
	return dir, []workflow.Action{
		{Name: "a", Type: "file.write", Args: map[string]string{"path": filepath.Join(dir, "a"), "content": "A"}},
		{Name: "b", Type: "file.write", Args: map[string]string{"path": filepath.Join(dir, "b"), "content": "B"}},
		{Name: "c", Type: "exec", Needs: []string{"a", "b"},
			Args: map[string]string{"command": "cat " + filepath.Join(dir, "a") + " " + filepath.Join(dir, "b") + " > " + filepath.Join(dir, "c")}},
	}
}

// Every report goes through an appliance that answers 503 at first (it
// is restarting) and then to each report's first try: the workflow still
// ends, and each report is applied once.
func TestReportsRetriedThrough503(t *testing.T) {
	dir, actions := threeSteps(t)
	f, _ := run(t, func(f *fakeAPI, cfg *Config) {
		f.unavailable = 20
		seen := map[string]bool{}
		f.fault = func(rep agentproto.Report) int {
			key := fmt.Sprintf("%s/%d/%s/%d", rep.Action, rep.Attempt, rep.Kind, rep.Progress)
			if !seen[key] {
				seen[key] = true
				return http.StatusServiceUnavailable
			}
			return 0
		}
	}, actions...)
	st := waitDone(t, f)
	if st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	if got := string(readFile(t, filepath.Join(dir, "c"))); got != "AB" {
		t.Errorf("c = %q", got)
	}
	for _, kind := range []string{agentproto.ReportStart, agentproto.ReportFinish} {
		if n := len(f.reports(kind)); n != 3 {
			t.Errorf("%d %s reports applied, want 3", n, kind)
		}
	}
	f.with(func(f *fakeAPI) {
		if len(f.refused) != 0 {
			t.Errorf("refused reports: %+v", f.refused)
		}
	})
}

// A refused credential never ends the agent: it keeps asking, slowly,
// and goes on once the appliance accepts it.
func TestUnauthorized(t *testing.T) {
	_, actions := threeSteps(t)
	f := newFakeAPI(t, actions...)
	startAgent(t, testConfig(t, f, "wrong-token"))
	waitUntil(t, "a few refused requests", func() bool { return f.requestCount("GET "+agentproto.PathWorkflow) >= 5 })
	if st := f.state(); st.Status != workflow.Pending {
		t.Fatalf("workflow %s with a wrong credential", st.Status)
	}
	f.with(func(f *fakeAPI) { f.token = "wrong-token" }) // the appliance now accepts it
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
}

// An attempt a previous agent left running is reported lost, and the
// appliance's retry runs, though the action has no retries; an appliance
// of a release before lost reports is told the attempt failed, and its
// retry runs.
func TestAgentRestartedDuringAttempt(t *testing.T) {
	for name, tc := range map[string]struct {
		noLost  bool
		retries int
		want    []agentproto.Report
	}{
		"lost": {want: []agentproto.Report{
			{Action: "write", Attempt: 1, Kind: "lost", Message: "the agent restarted during attempt 1"},
			{Action: "write", Attempt: 2, Kind: "start"},
		}},
		"an appliance without lost reports": {noLost: true, retries: 1, want: []agentproto.Report{
			{Action: "write", Attempt: 1, Kind: "finish", Message: "the agent restarted during attempt 1"},
			{Action: "write", Attempt: 2, Kind: "start"},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFakeAPI(t, workflow.Action{Name: "write", Type: "file.write", Retries: tc.retries, Backoff: time.Millisecond,
				Args: map[string]string{"path": filepath.Join(dir, "x"), "content": "x"}})
			f.with(func(f *fakeAPI) {
				st, _, err := workflow.Start(f.st, "write", 1, time.Now()) // the agent before this one
				if err != nil {
					t.Fatal(err)
				}
				f.st, f.noLost = st, tc.noLost
			})
			startAgent(t, testConfig(t, f, fakeToken))
			st := waitDone(t, f)
			if st.Status != workflow.Succeeded {
				t.Fatalf("workflow %s: %s", st.Status, st.Reason)
			}
			var got []agentproto.Report
			f.with(func(f *fakeAPI) {
				for _, r := range f.applied {
					if r.Kind != agentproto.ReportProgress {
						got = append(got, r)
					}
				}
			})
			if len(got) != 3 || !got[2].OK || got[2].Attempt != 2 {
				t.Fatalf("reports = %+v", got)
			}
			if diff := cmp.Diff(tc.want, got[:2]); diff != "" {
				t.Errorf("reports (-want +got):\n%s", diff)
			}
		})
	}
}

// The agent waits for a usable command line, without exiting or
// spinning.
func TestWaitsForCmdline(t *testing.T) {
	dir, actions := threeSteps(t)
	f := newFakeAPI(t, actions...)
	cfg := testConfig(t, f, fakeToken)
	full := readFile(t, cfg.CmdlinePath)
	if err := os.WriteFile(cfg.CmdlinePath, []byte("console=ttyS0 quiet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startAgent(t, cfg)
	time.Sleep(100 * time.Millisecond)
	if n := f.requestCount("GET " + agentproto.PathWorkflow); n != 0 {
		t.Fatalf("%d requests without a credential", n)
	}
	if err := os.WriteFile(cfg.CmdlinePath, full, 0o644); err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); err != nil {
		t.Error(err)
	}
}

// A failed command fails its action with its exit status and the tail of
// its output; a command's own timeout and the action's timeout end it.
func TestExec(t *testing.T) {
	tests := map[string]struct {
		action   workflow.Action
		status   workflow.Status // or failed, when the agent's clock wins
		contains []string
		lacks    []string
	}{
		"fails with its output's tail": {
			action: workflow.Action{Args: map[string]string{
				"command": "for i in $(seq 1 300); do echo line $i; done; echo boom >&2; exit 3"}},
			status:   workflow.Failed,
			contains: []string{"exit status 3: ...", "line 300\nboom"},
			lacks:    []string{"line 1\n"},
		},
		"its own timeout": {
			action:   workflow.Action{Args: map[string]string{"command": "echo started; sleep 30", "timeout": "200ms"}},
			status:   workflow.Failed,
			contains: []string{"timed out after 200ms: started"},
		},
		"the action's timeout": {
			action: workflow.Action{Timeout: 300 * time.Millisecond, Args: map[string]string{"command": "sleep 30"}},
			status: workflow.TimedOut,
		},
		"succeeds": {
			action: workflow.Action{Args: map[string]string{"command": "exit 0"}},
			status: workflow.Succeeded,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			tt.action.Name, tt.action.Type = "cmd", "exec"
			f, _ := run(t, nil, tt.action)
			began := time.Now()
			st := waitDone(t, f)
			if took := time.Since(began); took > 10*time.Second {
				t.Errorf("took %s", took)
			}
			a, _ := st.Action("cmd")
			if tt.status == workflow.TimedOut && a.Status == workflow.Failed && strings.Contains(a.Message, "timed out after") {
				a.Status = workflow.TimedOut // the agent's deadline came before the appliance's
			}
			if a.Status != tt.status {
				t.Fatalf("status %s (%s), want %s", a.Status, a.Message, tt.status)
			}
			for _, s := range tt.contains {
				if !strings.Contains(a.Message, s) {
					t.Errorf("message %q lacks %q", a.Message, s)
				}
			}
			for _, s := range tt.lacks {
				if strings.Contains(a.Message, s) {
					t.Errorf("message %q has %q", a.Message, s)
				}
			}
			if len(a.Message) > maxMessage {
				t.Errorf("message of %d bytes", len(a.Message))
			}
		})
	}
}

// Terminal actions are reported done, and acknowledged, before they
// happen; a refused report keeps the machine up.
func TestTerminal(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	for _, p := range []string{kernel, initrd} {
		if err := os.WriteFile(p, []byte("boot"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		action workflow.Action
		refuse bool
		calls  []string
	}{
		"reboot":   {action: workflow.Action{Type: "reboot"}, calls: []string{"sync", "reboot"}},
		"poweroff": {action: workflow.Action{Type: "poweroff"}, calls: []string{"sync", "poweroff"}},
		"kexec": {
			action: workflow.Action{Type: "kexec", Args: map[string]string{"kernel": kernel, "initrd": initrd, "cmdline": "console=ttyS0 root=/dev/vda1"}},
			calls:  []string{"kexec-load " + kernel + " " + initrd + " console=ttyS0 root=/dev/vda1", "sync", "kexec-reboot"},
		},
		"refused": {action: workflow.Action{Type: "reboot"}, refuse: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			tt.action.Name = "last"
			f, sys := run(t, func(fa *fakeAPI, cfg *Config) {
				if tt.refuse {
					fa.fault = func(rep agentproto.Report) int {
						if rep.Kind == agentproto.ReportFinish {
							return http.StatusConflict
						}
						return 0
					}
				}
				cfg.System.(*fakeSystem).check = func(call string) {
					if call == "kexec-load" || strings.HasPrefix(call, "kexec-load ") {
						return // before the report, so a bad kernel fails the action
					}
					if a, _ := fa.state().Action("last"); a.Status != workflow.Succeeded {
						t.Errorf("%s before the appliance acknowledged the result (%s)", call, a.Status)
					}
				}
			}, tt.action)
			if tt.refuse {
				waitUntil(t, "the refused report", func() bool {
					var n int
					f.with(func(f *fakeAPI) { n = f.requests["POST "+agentproto.PathReport] })
					return n >= 2
				})
				time.Sleep(100 * time.Millisecond)
			} else {
				waitUntil(t, "the last call", func() bool { return len(sys.Calls()) == len(tt.calls) })
			}
			if diff := cmp.Diff(tt.calls, sys.Calls()); diff != "" {
				t.Errorf("system calls (-want +got):\n%s", diff)
			}
		})
	}
}

// The loop never starts an action twice, nor one that is not ready.
func TestRunsReadyOnce(t *testing.T) {
	dir := t.TempDir()
	var actions []workflow.Action
	var needs []string
	for i := range 6 {
		name := fmt.Sprintf("p%d", i)
		actions = append(actions, workflow.Action{Name: name, Type: "exec",
			Args: map[string]string{"command": "sleep 0.05; echo " + name + " >> " + filepath.Join(dir, "log")}})
		needs = append(needs, name)
	}
	actions = append(actions, workflow.Action{Name: "end", Type: "exec", Needs: needs,
		Args: map[string]string{"command": "echo end >> " + filepath.Join(dir, "log")}})
	f, _ := run(t, nil, actions...)
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	lines := strings.Fields(string(readFile(t, filepath.Join(dir, "log"))))
	if len(lines) != 7 || lines[6] != "end" {
		t.Errorf("log = %q", lines)
	}
	slices.Sort(lines)
	if len(slices.Compact(lines)) != 7 {
		t.Errorf("an action ran twice: %q", lines)
	}
	f.with(func(f *fakeAPI) {
		if len(f.refused) != 0 {
			t.Errorf("refused reports: %+v", f.refused)
		}
	})
}

// A refused start (409) is final for that report, but the action starts
// again once the workflow shows it ready.
func TestStartRefused(t *testing.T) {
	dir, actions := threeSteps(t)
	f, _ := run(t, func(f *fakeAPI, cfg *Config) {
		refused := map[string]bool{}
		f.fault = func(rep agentproto.Report) int {
			if rep.Kind == agentproto.ReportStart && !refused[rep.Action] {
				refused[rep.Action] = true
				return http.StatusConflict
			}
			return 0
		}
	}, actions...)
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	for _, r := range f.reports(agentproto.ReportStart) {
		if r.Attempt != 1 {
			t.Errorf("start of attempt %d of %s", r.Attempt, r.Action)
		}
	}
	if got := string(readFile(t, filepath.Join(dir, "c"))); got != "AB" {
		t.Errorf("c = %q", got)
	}
}
