#!/usr/bin/env bash
# Builds Jaeger's all-in-one (v2: an OpenTelemetry Collector with an OTLP
# receiver, in-memory storage and the query API) into bin/jaeger, from
# the separate Go module in tools/jaeger, so that its dependencies stay
# out of the product's go.mod. The tests that check the spans Outpost
# exports by OTLP start it (appliance/internal/lab: StartJaeger).
#
#   scripts/build-jaeger.sh        build if bin/jaeger is older than the
#                                  module's go.mod, go.sum or this script
#
# A first build takes about 4 minutes on 2 cores (a 120 MB binary); after
# that the script returns at once. Needs the Go module proxy (or a module
# cache holding Jaeger v1.75.0's modules).
set -euo pipefail

go="${GO:-go}"
cd "$(dirname "$0")/.."
root=$PWD
out="$root/bin/jaeger"

if [ -x "$out" ] && [ "$out" -nt tools/jaeger/go.mod ] && [ "$out" -nt tools/jaeger/go.sum ] &&
	[ "$out" -nt scripts/build-jaeger.sh ]; then
	exit 0
fi
mkdir -p "$root/bin"
echo "build-jaeger: building bin/jaeger from tools/jaeger (a few minutes the first time)" >&2
cd tools/jaeger
# A temporary name first, so that a build cut short leaves no binary
# that looks up to date.
CGO_ENABLED=0 GOWORK=off "$go" build -trimpath -o "$out.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
mv "$out.tmp" "$out"
