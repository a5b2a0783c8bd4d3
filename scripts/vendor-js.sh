#!/bin/sh
# Re-fetch the consoles' vendored JavaScript and CSS from npm, at the
# versions pinned below, and check each file against its recorded sha256.
# The files are committed (htmx, which both the appliance's console and
# central's portal load, in internal/webui/assets/vendor; xterm.js, the
# appliance's serial console, in appliance/internal/console/assets/vendor),
# so that go build and CI need no Node.js; run this only to check them or,
# with new versions and sums, to move to newer ones:
#
#   scripts/vendor-js.sh          fetch, verify and copy into place
#   scripts/vendor-js.sh -check   fetch and verify only
#
# It prints one line per file (directory, then name, package, path, sum:
# the line of that directory's VERSIONS) and, unless -check, writes each
# directory's VERSIONS.
set -eu

SHARED=internal/webui/assets/vendor
CONSOLE=appliance/internal/console/assets/vendor
HTMX=2.0.11
XTERM=6.0.0
FIT=0.11.0

# directory  package@version  file in the package  name in the directory  sha256
FILES="
$SHARED htmx.org@$HTMX dist/htmx.min.js htmx.min.js d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717
$SHARED htmx.org@$HTMX LICENSE htmx.LICENSE d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38
$CONSOLE @xterm/xterm@$XTERM lib/xterm.js xterm.js 14903579ff54664cd72f8e8699e6961a6272c21863ec1c3b118cdc8af5d4a972
$CONSOLE @xterm/xterm@$XTERM css/xterm.css xterm.css 854a7c0fb70e8b1a083c16797ab827299fb18744f5ad34f227b48337e33293c6
$CONSOLE @xterm/addon-fit@$FIT lib/addon-fit.js addon-fit.js ba3ea256ce0620a0992a197d6c9baea64823fc93d8da07a9e366ca9943c18527
$CONSOLE @xterm/xterm@$XTERM LICENSE xterm.LICENSE b569f629d00f2626a8100df2a1798210535621e42164dfd426a6fe5aac7b0ccd
$CONSOLE @xterm/addon-fit@$FIT LICENSE addon-fit.LICENSE e256f01188af527e4d06d21d06fbf785ae9c50d4b328bf03cbe0ba7f0aa4228f
"

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$FILES" | while read -r dest pkg file name sum; do
	[ -n "$dest" ] || continue
	dir="$tmp/$(echo "$pkg" | tr '/@' '__')"
	if [ ! -d "$dir" ]; then
		mkdir -p "$dir"
		(cd "$dir" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz)
	fi
	got=$(sha256sum "$dir/package/$file" | cut -d' ' -f1)
	if [ "$got" != "$sum" ]; then
		echo "vendor-js: $pkg $file has sha256 $got, want $sum" >&2
		exit 1
	fi
	if [ "${1:-}" != -check ]; then
		cp "$dir/package/$file" "$dest/$name"
	fi
	echo "$dest $name $pkg $file sha256:$sum"
done > "$tmp/versions"
cat "$tmp/versions"
if [ "${1:-}" != -check ]; then
	for dest in $SHARED $CONSOLE; do
		grep "^$dest " "$tmp/versions" | cut -d' ' -f2- > "$dest/VERSIONS"
	done
fi
