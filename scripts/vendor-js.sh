#!/bin/sh
# Re-fetch the console's vendored JavaScript and CSS from npm, at the
# versions pinned below, and check each file against its recorded sha256.
# The files are committed (appliance/internal/console/assets/vendor), so
# that go build and CI need no Node.js; run this only to check them or,
# with new versions and sums, to move to newer ones:
#
#   scripts/vendor-js.sh          fetch, verify and copy into place
#   scripts/vendor-js.sh -check   fetch and verify only
#
# It prints one line per file (name, package, path, sum): the content of
# $DEST/VERSIONS.
set -eu

DEST=appliance/internal/console/assets/vendor
HTMX=2.0.11
XTERM=6.0.0
FIT=0.11.0

# package@version  file in the package  name in $DEST  sha256
FILES="
htmx.org@$HTMX dist/htmx.min.js htmx.min.js d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717
@xterm/xterm@$XTERM lib/xterm.js xterm.js 14903579ff54664cd72f8e8699e6961a6272c21863ec1c3b118cdc8af5d4a972
@xterm/xterm@$XTERM css/xterm.css xterm.css 854a7c0fb70e8b1a083c16797ab827299fb18744f5ad34f227b48337e33293c6
@xterm/addon-fit@$FIT lib/addon-fit.js addon-fit.js ba3ea256ce0620a0992a197d6c9baea64823fc93d8da07a9e366ca9943c18527
htmx.org@$HTMX LICENSE htmx.LICENSE d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38
@xterm/xterm@$XTERM LICENSE xterm.LICENSE b569f629d00f2626a8100df2a1798210535621e42164dfd426a6fe5aac7b0ccd
@xterm/addon-fit@$FIT LICENSE addon-fit.LICENSE e256f01188af527e4d06d21d06fbf785ae9c50d4b328bf03cbe0ba7f0aa4228f
"

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$FILES" | while read -r pkg file name sum; do
	[ -n "$pkg" ] || continue
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
		cp "$dir/package/$file" "$DEST/$name"
	fi
	echo "$name $pkg $file sha256:$sum"
done
