#!/usr/bin/env bash
# Runs every fuzz target of the repository, one after another, for a set
# time each, and prints each target's executions:
#
#   scripts/fuzz.sh [FUZZTIME]     FUZZTIME as go test -fuzztime takes it
#                                  (15m by default; 30s for a quick pass)
#
# The targets are the functions "func FuzzX(f *testing.F)" of every
# _test.go file. A target that fails leaves its failing input under the
# package's testdata/fuzz/ (go test says where); the others still run, and
# the script fails at the end if one did.
set -euo pipefail

fuzztime="${1:-15m}"
go="${GO:-go}"
cd "$(dirname "$0")/.."

# "<package dir> <target>" per target, in a stable order.
targets=$(grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\([A-Za-z0-9_]+ \*testing\.F\)' \
	--exclude-dir=.git --exclude-dir=var . |
	sed -E 's#^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*).*#\1 \2#' | sort)
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

summary=""
failed=0
while read -r dir name; do
	echo "=== $name (./$dir) for $fuzztime"
	log=$(mktemp)
	if "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir" >"$log" 2>&1; then
		result=ok
	else
		result=FAIL
		failed=1
		cat "$log"
	fi
	# The last progress line has the total: "fuzz: elapsed: 15m0s, execs: 123 (..."
	execs=$(sed -nE 's/^fuzz: elapsed: .*, execs: ([0-9]+) .*/\1/p' "$log" | tail -n 1)
	rm -f "$log"
	line=$(printf '%-28s %-40s %14s  %s' "$name" "./$dir" "${execs:-?}" "$result")
	echo "$line"
	summary+="$line"$'\n'
done <<<"$targets"

echo
printf '%-28s %-40s %14s  %s\n' TARGET PACKAGE EXECUTIONS RESULT
printf '%s' "$summary"
exit "$failed"
