package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// TestLinkLocalMetadataFollowsTheLeader: in a site of three nodes on one
// segment, only the leader answers ARP for 169.254.169.254 (arping from
// a client sees one MAC, the leader's) and serves metadata there. When
// the leader is SIGKILLed, the new leader takes the address: the
// client's ARP cache moves to its MAC by the gratuitous ARP alone, the
// dead node's address expires, and again one MAC answers.
func TestLinkLocalMetadataFollowsTheLeader(t *testing.T) {
	lab.Require(t, "root", "arping")
	s := startNetSite(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	// The client routes the address on-link, as option 121 has it.
	if out, err := s.client.Run(ctx, "ip", "route", "add", "169.254.169.254/32", "dev", siteIface); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	macs := map[string]string{}
	for _, n := range s.nodes {
		macs[n.id] = linkMAC(ctx, t, s.ns[n.id])
	}
	leader := s.node(s.waitFormed(s.nodes...))
	s.waitFor(60*time.Second, "only the leader answering ARP for 169.254.169.254", func() error {
		return answeredBy(ctx, s.client, macs[leader.id])
	})
	// The metadata service answers there (the client is no machine).
	s.waitFor(30*time.Second, "metadata on 169.254.169.254:80", func() error {
		return metadataAnswers(ctx, s.client)
	})
	if got := neighbourMAC(ctx, t, s.client); got != macs[leader.id] {
		t.Fatalf("the client's ARP cache has %q for 169.254.169.254, want the leader's %s", got, macs[leader.id])
	}

	s.kill(leader)
	var survivors []*node
	for _, n := range s.nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	next := s.node(s.waitNewLeader(survivors, leader.id))
	// The client sends nothing meanwhile: only the new leader's
	// announcement can move its cache.
	s.waitFor(60*time.Second, "the client's ARP cache on the new leader", func() error {
		if got := neighbourMAC(ctx, t, s.client); got != macs[next.id] {
			return fmt.Errorf("169.254.169.254 is at %q, want %s (%s)", got, macs[next.id], next.id)
		}
		return nil
	})
	s.waitFor(60*time.Second, "the dead node's address to expire", func() error {
		out, err := s.ns[leader.id].Run(ctx, "ip", "-4", "addr", "show", "dev", siteIface)
		if err != nil {
			return err
		}
		if strings.Contains(out, "169.254.169.254") {
			return errors.New("still held")
		}
		return nil
	})
	s.waitFor(60*time.Second, "only the new leader answering ARP", func() error {
		return answeredBy(ctx, s.client, macs[next.id])
	})
	if err := metadataAnswers(ctx, s.client); err != nil {
		t.Errorf("after the failover: %v", err)
	}
	for _, n := range survivors {
		if n == next {
			continue
		}
		out, _ := s.ns[n.id].Run(ctx, "ip", "-4", "addr", "show", "dev", siteIface)
		if strings.Contains(out, "169.254.169.254") {
			t.Errorf("follower %s holds 169.254.169.254:\n%s", n.id, out)
		}
	}
}

var linkEtherRE = regexp.MustCompile(`link/ether ([0-9a-f:]{17})`)

// linkMAC is the MAC of ns's port on the site's network.
func linkMAC(ctx context.Context, t *testing.T, ns *lab.Netns) string {
	t.Helper()
	out, err := ns.Run(ctx, "ip", "-o", "link", "show", "dev", siteIface)
	if err != nil {
		t.Fatal(err)
	}
	m := linkEtherRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no MAC in %q", out)
	}
	return m[1]
}

var arpingReplyRE = regexp.MustCompile(`reply from 169\.254\.169\.254 \[([0-9A-Fa-f:]{17})\]`)

// answeredBy arpings 169.254.169.254 from ns and checks that the one MAC
// answering is want.
func answeredBy(ctx context.Context, ns *lab.Netns, want string) error {
	// Three requests, a second apart: every holder has time to answer.
	out, _ := ns.Run(ctx, "arping", "-c", "3", "-w", "4", "-I", siteIface, "169.254.169.254")
	var got []string
	for _, m := range arpingReplyRE.FindAllStringSubmatch(out, -1) {
		if mac := strings.ToLower(m[1]); !slices.Contains(got, mac) {
			got = append(got, mac)
		}
	}
	if !slices.Equal(got, []string{want}) {
		return fmt.Errorf("answered by %v, want only %s", got, want)
	}
	return nil
}

var neighRE = regexp.MustCompile(`lladdr ([0-9a-f:]{17})`)

// neighbourMAC is ns's ARP cache entry for 169.254.169.254 ("" if none).
func neighbourMAC(ctx context.Context, t *testing.T, ns *lab.Netns) string {
	t.Helper()
	out, err := ns.Run(ctx, "ip", "-4", "neigh", "show", "169.254.169.254", "dev", siteIface)
	if err != nil {
		t.Fatal(err)
	}
	if m := neighRE.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// metadataAnswers checks that the metadata service answers the client
// at 169.254.169.254:80: the client is no machine, so with the 404 that
// says so.
func metadataAnswers(ctx context.Context, ns *lab.Netns) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://169.254.169.254/latest/meta-data/instance-id", nil)
	c := ns.HTTPClient()
	c.Timeout = 5 * time.Second
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "no machine has address") {
		return fmt.Errorf("%s %q, want the metadata service's 404 for a stranger", res.Status, b)
	}
	return nil
}
