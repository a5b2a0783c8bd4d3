// Package agent is the provisioning agent of Outpost's in-memory installer:
// it reads its credential from the kernel command line, asks the
// appliance's agent API (see agentproto) for its workflow, runs the ready
// actions and reports their start, progress and result.
//
// # Invariants
//
//   - The agent never exits on its own: Run returns only when its context
//     ends. A missing credential, an appliance that is away, a refused
//     report or a finished workflow make it wait and retry, never spin.
//   - Every report is retried until the appliance acknowledges it (200),
//     with capped exponential backoff and jitter; 400 and 409 are final
//     for that report and make the agent fetch the workflow again; 401
//     means the credential is refused and is retried slowly.
//   - An attempt is run at most once by one process. An attempt the
//     workflow shows running that this process did not start belonged to
//     an earlier process (the agent was restarted): it is reported failed,
//     "the agent restarted during attempt N", so the appliance's retry
//     policy decides, and never silently run again.
//   - A terminal action (reboot, kexec, poweroff) is reported succeeded,
//     and the report acknowledged, before the machine goes down; the
//     kernel calls go through System so tests never reboot the host.
//   - Images come only from the appliance: an image URL on another host,
//     or a redirect to one, fails the attempt and is never requested. A
//     download that breaks resumes where it broke (Range, If-Range);
//     only one that cannot starts over.
//   - The token is never logged, nor put in a span.
//
// # Tracing
//
// The agent's work is traced under its workflow's trace: the traceparent
// the workflow shows the agent, else the one on the kernel command line
// (agentproto.ParamTraceparent). Its run is an agent.run span, a child
// of that traceparent, and each attempt an action.<name> span under it
// (its type in outpost.action_type, failed if it failed), an image
// write's progress a few "progress" events (outpost.bytes). The spans go
// to the appliance (agentproto.PathSpans) in batches; before a terminal
// action takes the machine down, and when the agent stops, it sends what
// is finished, waiting at most Config.FlushTimeout: tracing never holds
// up the work. Without a traceparent, or with OUTPOST_TRACING=off,
// nothing is recorded. The agent traces with the OpenTelemetry SDK
// alone, not package tracing, to stay a small binary.
package agent
