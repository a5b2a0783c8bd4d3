package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// cloudInitPython is the Python that runs Debian's cloud-init.
const cloudInitPython = "/usr/bin/python3"

// ec2Probe drives cloud-init's Ec2 datasource as the network stage of
// a stock image's first boot does, with cloud-init's built-in settings:
// no metadata_urls, so it looks at http://169.254.169.254 (port 80). Its
// one argument is a directory for cloud-init's state. It prints what the
// datasource read as JSON, and cloud-init's log on stderr.
const ec2Probe = `
import json, logging, os, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
from cloudinit import distros, helpers, settings, util
from cloudinit.sources.DataSourceEc2 import DataSourceEc2

d = sys.argv[1]
paths = helpers.Paths({"cloud_dir": os.path.join(d, "cloud"), "run_dir": os.path.join(d, "run")})
sys_cfg = util.mergemanydict([{"datasource_list": ["Ec2"]}, settings.CFG_BUILTIN])
distro = distros.fetch("debian")("debian", {}, paths)
ds = DataSourceEc2(sys_cfg, distro, paths)
if not ds.get_data():
    print(json.dumps({"found": False}))
    sys.exit(0)
hostname = ds.get_hostname()
print(json.dumps({
    "found": True,
    "metadata_address": ds.metadata_address,
    "instance_id": ds.get_instance_id(),
    "hostname": getattr(hostname, "hostname", hostname),
    "keys": ds.get_public_ssh_keys(),
    "user_data": ds.get_userdata_raw().decode(),
    "availability_zone": ds.availability_zone,
    "region": ds.region,
}))
`

// ec2Result is what ec2Probe prints.
type ec2Result struct {
	Found            bool     `json:"found"`
	MetadataAddress  string   `json:"metadata_address"`
	InstanceID       string   `json:"instance_id"`
	Hostname         string   `json:"hostname"`
	Keys             []string `json:"keys"`
	UserData         string   `json:"user_data"`
	AvailabilityZone string   `json:"availability_zone"`
	Region           string   `json:"region"`
}

// requireCloudInit fails in CI, and skips elsewhere, without Debian's
// cloud-init (scripts/install-deps.sh installs it, disabled on the host).
func requireCloudInit(t *testing.T) {
	t.Helper()
	lab.Require(t, "root", cloudInitPython, "/usr/lib/python3/dist-packages/cloudinit/sources/DataSourceEc2.py")
}

// runEc2Probe runs ec2Probe in ns and returns what cloud-init read.
func runEc2Probe(ctx context.Context, t *testing.T, ns *lab.Netns) ec2Result {
	t.Helper()
	dir := t.TempDir()
	cmd := ns.CommandContext(ctx, cloudInitPython, "-c", ec2Probe, dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cloud-init's Ec2 datasource: %v\n%s", err, stderr.String())
	}
	var r ec2Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("cloud-init's Ec2 datasource printed %q: %v\n%s", out, err, stderr.String())
	}
	if !r.Found {
		t.Fatalf("cloud-init's Ec2 datasource found no metadata:\n%s", stderr.String())
	}
	return r
}

// routesClientScript is udhcpc's script for a client that takes its
// routes from option 121 alone ($staticroutes: destination and router
// pairs, router 0.0.0.0 meaning on-link), as RFC 3442 has a client that
// gets option 121 ignore option 3.
const routesClientScript = `#!/bin/sh
PATH=/usr/sbin:/sbin:/usr/bin:/bin:$PATH
echo "$1 $ip routes=$staticroutes" >>LOG
case $1 in
bound|renew)
	ip addr replace "$ip/$mask" dev "$interface" || exit 1
	set -- $staticroutes
	while [ $# -ge 2 ]; do
		if [ "$2" = 0.0.0.0 ]; then
			ip route replace "$1" dev "$interface" || exit 1
		else
			ip route replace "$1" via "$2" dev "$interface" || exit 1
		fi
		shift 2
	done ;;
deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
`

// leaseWithRoutes runs udhcpc in host, asking for option 121, until it
// has a lease; it returns the address. udhcpc keeps running until the
// test ends.
func leaseWithRoutes(ctx context.Context, t *testing.T, host *lab.Netns) string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte(strings.ReplaceAll(routesClientScript, "LOG", filepath.Join(dir, "events"))), 0o755); err != nil {
		t.Fatal(err)
	}
	p := host.Start(t, "udhcpc", "-f", "-i", "eth0", "-s", script, "-t", "20", "-T", "1", "-O", "staticroutes")
	line := waitClientLine(ctx, t, p, regexp.MustCompile(`lease of (\S+) obtained`))
	return regexp.MustCompile(`lease of (\S+) obtained`).FindStringSubmatch(line)[1]
}
