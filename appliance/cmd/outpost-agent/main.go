// Command outpost-agent is the provisioning agent of Outpost's in-memory
// installer. Placeholder until the agent lands: see internal/agent.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "outpost-agent: not built yet")
	os.Exit(1)
}
