package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/internal/testwait"
)

// TestCloudInitFindsLinkLocalMetadata: a machine leases its address
// with udhcpc, takes its routes from option 121 (169.254.169.254 on-link,
// no other configuration), and Debian's cloud-init, its Ec2 datasource
// with built-in settings, reads its instance-id, hostname, SSH key, user
// data and placement from http://169.254.169.254, where the appliance
// (the leader of its single-node site) answers.
func TestCloudInitFindsLinkLocalMetadata(t *testing.T) {
	requireCloudInit(t)
	lab.Require(t, "udhcpc")
	s := provisionSite(t)
	const (
		mac      = "52:54:00:0c:10:01"
		key      = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHR5cGljYWwga2V5IGZvciB0ZXN0cw== ops@example"
		userData = "#cloud-config\nruncmd:\n- echo linklocal\n"
	)
	w := labsite.Workflow("wf-ci1", "ci1", labsite.TestOSName, "alpha")
	w.Values["ssh_keys"] = key
	w.Values["user_data"] = userData
	s.Put(t, labsite.Machine("ci1", mac), w)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	host := s.AttachHost(t, "ci1", mac, "")
	ip := leaseWithRoutes(ctx, t, host)
	// The script adds option 121's routes in order: the on-link route to
	// 169.254.169.254, then the default route through the subnet's
	// gateway (option 3 is not used).
	testwait.For(t, "option 121's routes: 169.254.169.254 on-link, default via "+labsite.ServerIP, 30*time.Second, func() bool {
		md, err1 := host.Run(ctx, "ip", "-4", "route", "show", "169.254.169.254")
		def, err2 := host.Run(ctx, "ip", "-4", "route", "show", "default")
		return err1 == nil && err2 == nil && strings.Contains(md, "dev eth0") && !strings.Contains(md, "via") &&
			strings.Contains(def, "via "+labsite.ServerIP)
	})

	r := runEc2Probe(ctx, t, host)
	t.Logf("cloud-init at %s read %+v", ip, r)
	if r.MetadataAddress != "http://169.254.169.254" {
		t.Errorf("cloud-init used %q, want http://169.254.169.254", r.MetadataAddress)
	}
	if r.InstanceID != "ci1" || r.Hostname != "alpha" {
		t.Errorf("instance-id %q, hostname %q; want ci1, alpha", r.InstanceID, r.Hostname)
	}
	if !slices.Equal(r.Keys, []string{key}) {
		t.Errorf("keys %q, want [%q]", r.Keys, key)
	}
	if r.UserData != userData {
		t.Errorf("user data %q, want %q", r.UserData, userData)
	}
	if r.Region == "" || r.AvailabilityZone != r.Region+"a" {
		t.Errorf("region %q, zone %q: want the site's name and that name with \"a\"", r.Region, r.AvailabilityZone)
	}
}
