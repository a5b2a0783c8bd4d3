package workflow_test

import (
	"fmt"
	"time"

	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// A workflow from template to success: bind the values, build the plan,
// then apply the agent's reports as the leader would, each with its time.
func Example() {
	template := []workflow.Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/vda"}},
		{Name: "image", Type: "image.write", Args: map[string]string{"url": "{{ .image }}", "device": "/dev/vda"},
			Needs: []string{"wipe"}, Timeout: 10 * time.Minute, Retries: 2},
		{Name: "reboot", Type: "reboot", Needs: []string{"image"}},
	}
	known := map[string][]string{"disk.wipe": {"device"}, "image.write": {"url", "device"}, "reboot": nil}
	actions, err := workflow.Bind(template, map[string]string{"image": "http://198.18.0.1/images/debian.raw.zst"})
	if err != nil {
		panic(err)
	}
	plan, err := workflow.NewPlan(actions, known)
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	st := workflow.NewState(plan, now.Add(time.Hour))

	report := func(s workflow.State, trs []workflow.Transition, err error) {
		if err != nil {
			fmt.Println("refused:", err)
			return
		}
		st = s
		for _, tr := range trs {
			if tr.Action == "" {
				fmt.Printf("workflow: %s → %s\n", tr.From, tr.To)
				continue
			}
			fmt.Printf("%s, attempt %d: %s → %s", tr.Action, tr.Attempt, tr.From, tr.To)
			if tr.Message != "" {
				fmt.Printf(" (%s)", tr.Message)
			}
			fmt.Println()
		}
	}
	report(workflow.Start(st, "wipe", 1, now))
	report(workflow.Finish(st, "wipe", 1, true, "", now.Add(5*time.Second)))
	fmt.Println("ready:", workflow.Ready(st, now.Add(5*time.Second)))
	report(workflow.Start(st, "image", 1, now.Add(6*time.Second)))
	report(workflow.Finish(st, "image", 1, false, "sha256 mismatch", now.Add(time.Minute)))
	report(workflow.Finish(st, "image", 1, false, "sha256 mismatch", now.Add(time.Minute))) // a duplicate
	report(workflow.Start(st, "image", 2, now.Add(time.Minute)))                            // too early
	report(workflow.Start(st, "image", 2, now.Add(time.Minute+5*time.Second)))
	report(workflow.Finish(st, "image", 2, true, "", now.Add(2*time.Minute)))
	// The agent reports the reboot done before it reboots.
	report(workflow.Start(st, "reboot", 1, now.Add(2*time.Minute)))
	report(workflow.Finish(st, "reboot", 1, true, "", now.Add(2*time.Minute)))
	fmt.Println("status:", st.Status)
	// Output:
	// workflow: pending → running
	// wipe, attempt 1: pending → running
	// wipe, attempt 1: running → succeeded
	// ready: [image]
	// image, attempt 1: pending → running
	// image, attempt 1: running → failed (sha256 mismatch)
	// image, attempt 1: failed → pending (retry 1 of 2 after 5s)
	// refused: workflow: action is not ready: image may not be retried before 2026-03-01T10:01:05Z
	// image, attempt 2: pending → running
	// image, attempt 2: running → succeeded
	// reboot, attempt 1: pending → running
	// reboot, attempt 1: running → succeeded
	// workflow: running → succeeded
	// status: succeeded
}
