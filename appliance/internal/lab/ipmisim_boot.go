package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// chassisScript is ipmi_sim's chassis_control program for a simulator
// with BootDevice: ipmi_sim runs it as "chassis get power boot" or
// "chassis set boot pxe" (OpenIPMI's extcmd), instead of its own
// startcmd, for power and for the boot device alike. Power on runs
// start.sh (StartCmd) in the background and keeps its pid; power off
// kills it (SIGTERM at once, SIGKILL 5 s later, in the background: ipmi_sim
// answers nothing while the program runs); the boot device is kept in a
// file. The background process stays in ipmi_sim's process group, which
// the lab kills when the test ends; a process that has exited but is not
// yet reaped (a zombie, under a subreaper) counts as off.
const chassisScript = `#!/bin/sh
d=%q
alive() { read -r st <"/proc/$1/stat" 2>/dev/null || return 1; case $st in *") Z "*) return 1 ;; esac; }
running() { [ -s "$d/vm.pid" ] && alive "$(cat "$d/vm.pid")"; }
op=$1; shift
case $op in
get)
	for f in "$@"; do
		case $f in
		power) if running; then echo power:1; else echo power:0; fi ;;
		boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo none)" ;;
		esac
	done ;;
set)
	while [ $# -ge 2 ]; do
		case $1 in
		power)
			if [ "$2" = 1 ]; then
				running || { sh "$d/start.sh" </dev/null >/dev/null 2>&1 & echo $! >"$d/vm.pid"; }
			elif running; then
				pid=$(cat "$d/vm.pid"); rm -f "$d/vm.pid"; kill -TERM "$pid"
				(sleep 5; kill -KILL "$pid") </dev/null >/dev/null 2>&1 &
			fi ;;
		boot) echo "$2" >"$d/boot" ;;
		esac
		shift 2
	done ;;
esac
`

// writeChassis writes the chassis_control program and its start.sh into
// dir and returns the program's path.
func writeChassis(dir string, cfg IPMISimConfig) (string, error) {
	prog := filepath.Join(dir, "chassis")
	if err := os.WriteFile(filepath.Join(dir, "start.sh"), []byte("exec "+cfg.StartCmd+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(prog, []byte(fmt.Sprintf(chassisScript, dir)), 0o700); err != nil {
		return "", err
	}
	if cfg.PoweredOn {
		cmd := exec.Command(prog, "set", "power", "1")
		if cfg.Netns != nil {
			cmd = cfg.Netns.CommandContext(context.Background(), prog, "set", "power", "1")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("power on: %w: %s", err, out)
		}
	}
	return prog, nil
}

var bootSelector = regexp.MustCompile(`Boot Device Selector : (.+)`)

// BootDevice asks the simulator for its next boot device (ipmitool
// chassis bootparam get 5), as ipmitool names it: "Force PXE", "No
// override", ... A simulator without BootDevice refuses the question.
func (s *IPMISim) BootDevice(ctx context.Context) (string, error) {
	out, err := s.IPMITool(ctx, "chassis", "bootparam", "get", "5")
	if err != nil {
		return "", err
	}
	m := bootSelector.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("lab: no boot device selector in: %s", out)
	}
	return strings.TrimSpace(m[1]), nil
}
