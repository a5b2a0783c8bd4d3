package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/soak"
)

// The soak records each fault it injects at its central as an
// annotation of its site (POST /v1/annotations): kind the fault's kind,
// its window as it happened, its text the target and parameters. The
// portal's charts page then draws the run's provisions with the faults
// marked and what each cost, as soak.svg does; and the soak checks at
// the end that central holds one annotation per fault.

// soakAnnotateTimeout bounds how long one annotation is retried across
// central's nodes (one may be killed).
const soakAnnotateTimeout = time.Minute

// annotation is the body of fault f's annotation, its window from the
// run's start.
func (in *soakInjector) annotation(f soak.Fault) map[string]string {
	return map[string]string{"site": soakSiteID, "kind": string(f.Kind), "text": faultText(f),
		"start": in.start.Add(f.Start).UTC().Format(time.RFC3339Nano), "end": in.start.Add(f.End).UTC().Format(time.RFC3339Nano)}
}

// faultText says what fault f did: its target and parameters.
func faultText(f soak.Fault) string {
	switch f.Kind {
	case soak.SiteKill:
		return "SIGKILL of the site's applianced, started again at the end"
	case soak.CentralKill:
		if f.Target == "" {
			return "SIGKILL of central's leader: skipped, no node said it led"
		}
		return "SIGKILL of central's leader " + f.Target + ", started again at the end"
	case soak.WANPartition:
		return "the site's connections to central refused"
	case soak.WANFlap:
		return "the site's link to central cut 3 s, healed 3 s, in turn"
	case soak.BootLoss:
		return fmt.Sprintf("boot network: %d %% of packets dropped both ways (nftables numgen), rate %s (tbf)", soakLossPct, soakRate)
	case soak.BMCDead:
		return "ipmi_sim of " + f.Target + " killed, started again at the end"
	case soak.AgentKill:
		return fmt.Sprintf("installer agent of %s killed %s into its workflow", f.Target, soakAgentAfter)
	case soak.BMCTimeout:
		return "ipmi_sim of " + f.Target + " stopped (SIGSTOP: it answers nothing), continued at the end"
	case soak.BMCRefuse:
		return "the IPMI port of " + f.Target + "'s BMC rejects every packet (nftables) until the end"
	case soak.ImageCorrupt:
		return "a byte of " + f.Target + "'s next image download flipped before its agent hashes it"
	case soak.DiskFull:
		return "the leading site node's data filesystem filled, freed at the end"
	case soak.ClockStep:
		return fmt.Sprintf("the leading site node's wall clock stepped by %s, stepped back at the end", f.Step)
	case soak.Upgrade:
		return "the site's nodes, then central's, replaced one at a time by this release"
	}
	return "target " + f.Target
}

// annotate records the ith fault, as it happened, at central. A fault
// central did not record (a central of the release the soak upgrades
// from has no annotations yet: 404) is posted again by annotateUnposted,
// at the end; one it still does not record then is an invariant broken
// (soakCheckAnnotated counts them).
func (in *soakInjector) annotate(ctx context.Context, i int) {
	in.mu.Lock()
	f := in.done[i]
	in.mu.Unlock()
	if err := in.cen.do(context.WithoutCancel(ctx), soakAnnotateTimeout, "POST", "/v1/annotations", in.annotation(f), nil); err != nil {
		in.note(f, "not annotated at central yet", errHead(err))
		in.mu.Lock()
		in.unposted = append(in.unposted, i)
		in.mu.Unlock()
	}
}

// annotateUnposted posts again the faults annotate could not, once every
// fault has ended (and central has been upgraded, when the soak upgrades
// it).
func (in *soakInjector) annotateUnposted(ctx context.Context) {
	in.mu.Lock()
	unposted := in.unposted
	in.unposted = nil
	in.mu.Unlock()
	for _, i := range unposted {
		in.mu.Lock()
		f := in.done[i]
		in.mu.Unlock()
		if err := in.cen.do(ctx, soakAnnotateTimeout, "POST", "/v1/annotations", in.annotation(f), nil); err != nil {
			in.note(f, "not annotated at central", err)
		}
	}
}

// errHead is err's message up to its first line break: central's
// errors carry a JSON body per node.
func errHead(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// soakCheckAnnotated checks that central holds one annotation of the
// soak's site per fault injected, of each kind.
func soakCheckAnnotated(ctx context.Context, cen *soakCentral, injected []soak.Fault, chk *soak.Checker) {
	var got struct {
		Annotations []struct {
			Kind string `json:"kind"`
		} `json:"annotations"`
	}
	if err := cen.do(ctx, soakAnnotateTimeout, "GET", "/v1/annotations?site="+soakSiteID+"&limit=5000", nil, &got); err != nil {
		chk.Violate("annotation", "read central's annotations: %v", err)
		return
	}
	want, have := map[string]int{}, map[string]int{}
	for _, f := range injected {
		want[string(f.Kind)]++
	}
	for _, a := range got.Annotations {
		have[a.Kind]++
	}
	for kind, n := range want {
		if have[kind] != n {
			chk.Violate("annotation", "central holds %d annotations of %s, the soak injected %d", have[kind], kind, n)
		}
	}
}
