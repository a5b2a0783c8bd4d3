#!/usr/bin/env bash
# Runs every fuzz target of the repository, one after another, for a set
# time each, and prints each target's executions:
#
#   scripts/fuzz.sh [FUZZTIME]     FUZZTIME as go test -fuzztime takes it
#                                  (15m by default; 30s for a quick pass)
#
# FUZZJOBS targets run at once (1 by default), each with GOMAXPROCS/FUZZJOBS
# workers (at least one): on a 2-core machine FUZZJOBS=2 halves the wall
# time of a run and gives each target one worker.
#
# The targets are the functions "func FuzzX(f *testing.F)" of every
# _test.go file. A target that fails leaves its failing input under the
# package's testdata/fuzz/ (go test says where); the others still run, and
# the script fails at the end if one did.
set -euo pipefail

fuzztime="${1:-15m}"
go="${GO:-go}"
jobs="${FUZZJOBS:-1}"
workers=$(( $(nproc) / jobs ))
[ "$workers" -ge 1 ] || workers=1
cd "$(dirname "$0")/.."

# "<package dir> <target>" per target, in a stable order.
targets=$(grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\([A-Za-z0-9_]+ \*testing\.F\)' \
	--exclude-dir=.git --exclude-dir=var . |
	sed -E 's#^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*).*#\1 \2#' | sort)
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

# fuzz_one DIR NAME runs one target and writes its summary line (and, if
# it failed, its log) into $results.
fuzz_one() {
	local dir=$1 name=$2 key result execs log
	key=${1//\//_}.$2
	log=$results/$key.log
	echo "=== $name (./$dir) for $fuzztime"
	if "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel "$workers" "./$dir" >"$log" 2>&1; then
		result=ok
	else
		result=FAIL
		cat "$log"
	fi
	# The last progress line has the total: "fuzz: elapsed: 15m0s, execs: 123 (..."
	execs=$(sed -nE 's/^fuzz: elapsed: .*, execs: ([0-9]+) .*/\1/p' "$log" | tail -n 1)
	printf '%-28s %-40s %14s  %s\n' "$name" "./$dir" "${execs:-?}" "$result" | tee "$results/$key.line"
}

running=0
while read -r dir name; do
	fuzz_one "$dir" "$name" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done <<<"$targets"
wait || true

echo
printf '%-28s %-40s %14s  %s\n' TARGET PACKAGE EXECUTIONS RESULT
failed=0
while read -r dir name; do
	line=$(cat "$results/${dir//\//_}.$name.line" 2>/dev/null || printf '%-28s %-40s %14s  %s' "$name" "./$dir" "?" FAIL)
	echo "$line"
	case $line in *FAIL) failed=1 ;; esac
done <<<"$targets"
exit "$failed"
