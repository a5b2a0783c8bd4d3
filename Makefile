# Outpost. `make run` starts an appliance on embedded defaults; `make test`
# runs every test. See README.md.

export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
BIN     := bin
VAR     := var
GOFLAGS_BUILD := -trimpath

# Tests run package by package in CI (one at a time: the cluster tests
# start real processes and are sensitive to a starved CPU), in parallel
# elsewhere.
ifdef CI
TESTFLAGS ?= -p 1
endif
TESTFLAGS += -race -count=1 -timeout 20m

.PHONY: all build images jaeger run appliance test test-hw bench soak soak-ci screenshots fuzz lint deps-run deps-test clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/applianced ./appliance/cmd/applianced
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/outpost ./appliance/cmd/outpost
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/outpost-bench ./appliance/cmd/outpost-bench
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/outpost-demo ./appliance/cmd/outpost-demo
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/centrald ./central/cmd/centrald

# Boot artifacts into images/out/ from Debian packages and our Go code:
# iPXE binaries, the kernel, the installer's initramfs (with the agent),
# the test OS disk image and a test initramfs; quick when up to date.
images:
	@images/build.sh

# Jaeger's all-in-one into bin/jaeger, from its own Go module in
# tools/jaeger (its dependencies stay out of go.mod): the real OTLP
# receiver the tracing tests export to. Quick when up to date; about 4
# minutes the first time on 2 cores.
jaeger:
	@GO=$(GO) scripts/build-jaeger.sh

deps-run:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

# The demo of the main job: an order placed at central reaches a site (a
# single-node appliance in a network namespace lab), which powers a QEMU
# VM on through its BMC (ipmi_sim) and provisions it end to end. The
# installer and the test OS from images/out are published to central as
# artifacts and pulled by the site; the iPXE binaries stay files in its
# artifact directory, for TFTP. Ctrl-C cleans up.
# `make appliance` runs the appliance alone, on embedded defaults.
run: deps-run build images
	$(BIN)/outpost-demo -applianced $(BIN)/applianced -centrald $(BIN)/centrald

appliance: build
	$(BIN)/applianced -data-dir $(VAR)/node1

test: deps-test images jaeger lint
	$(GO) test $(TESTFLAGS) -skip '$(HWTESTS)' ./...

# The long real-peer suites, apart so that make test stays under 25
# minutes on 2 cores; .ci/run runs them after make test. Each is minutes
# of QEMU under software emulation or of waiting on real daemons:
#   - whole provisions of VMs: through a BMC (IPMI, Redfish), by proxy
#     DHCP, of a central artifact, a bad checksum, discovery, Secure
#     Boot, UEFI HTTP boot, virtual media, arm64, and through a 3-node
#     site's leader loss; cloud-init finding link-local metadata;
#   - firmware netboots (BIOS, UEFI) and the test OS booting from disk;
#     the serial console of a booting VM (SOL, the console's websocket);
#   - the images built twice to compare, and Kea under callgrind;
#   - a short soak with its checker made to fail; a site and a central
#     of two releases (the older built from a worktree); nodes whose disk
#     fills or whose clock steps.
# A test named here runs in test-hw in every package listed there (two
# packages have a TestNetbootBIOS). The e2e package's share is one test
# binary, hence the timeout of its own.
HWTESTS_NAMES := \
	TestBMCProvision TestBMCDeadDoesNotDelay TestRedfishProvision TestProxyDHCP \
	TestProvisionArtifact TestProvisionBadChecksum TestDiscoveryVM \
	TestSecureBootProvision TestSecureBootRefusesIPXE TestSecureBootNetboot \
	TestHTTPBootProvision TestVirtualMediaProvision TestArm64Provision \
	TestSiteOf3ProvisionsThroughLeaderLoss TestArtifactFromCentralProvisionsThroughWANAndLeaderLoss \
	TestCloudInitFindsLinkLocalMetadata \
	TestNetbootBIOS TestNetbootUEFI TestTestOSBootsFromDisk TestIPMISimConsole TestConsoleWebsocket \
	TestImagesRepeatable TestInstrPerDORAKea \
	TestSoakCatchesViolation TestRollingUpgradeSkew TestCentralRollingUpgradeSkew TestSyncAcrossReleases \
	TestDiskFullLeader TestDiskFullSingleNode TestDHCPClockSteps
empty :=
space := $(empty) $(empty)
HWTESTS := ^($(subst $(space),|,$(strip $(HWTESTS_NAMES))))$$
HWPKGS  := ./appliance/e2e/ ./appliance/cmd/outpost-bench/ ./appliance/internal/lab/ \
	./appliance/internal/sol/ ./appliance/internal/api/
test-hw: deps-test images
	$(GO) test $(TESTFLAGS) -timeout 60m -run '$(HWTESTS)' $(HWPKGS)

# Every benchmark, or a subset: `make bench NAMES=store,dhcp` (the names
# are outpost-bench's -run list; BENCHFLAGS adds its other flags, as
# BENCHFLAGS='-sync-sites 1000'). The boot storm and the QEMU benchmarks
# serve the boot artifacts, so images come first, as for test.
bench: build images
	$(BIN)/outpost-bench $(if $(NAMES),-run '$(NAMES)') $(BENCHFLAGS)

# A compressed day of provisioning under faults (outpost-bench's soak):
# a 3-node central, a site, SOAK_MACHINES simulated machines behind
# ipmi_sim BMCs provisioned and deprovisioned in a loop through central's
# orders, for SOAK_DURATION (an hour by default; 24h is a day), under a
# seeded fault schedule printed first (SOAK_SEED, 0 for a random one).
# The site is SOAK_SITE_NODES applianced (1 or 3, one Raft cluster).
# Both start from the release SOAK_UPGRADE_FROM (a git ref, built from
# a worktree of it; empty: no upgrade), upgraded node by node to the
# current one while the soak runs (an upgrade entry in the schedule).
# Fails on any broken invariant; the report goes to soak-report/
# (soak.json, soak.svg). SOAK_VMS real QEMU VMs (2), each behind its own
# ipmi_sim, join the simulated machines: they boot the installer, write
# the test OS and boot it, in the same loop of orders.
# SOAK_FLAGS adds other -soak-* flags. soak-ci is
# CI's: ten minutes, a fixed seed, 50 machines (200 ipmi_sim processes
# beside a 3-node central starve a 2-core CI machine's BMC calls: a run
# beside other work timed power cycles out) and one VM: a VM provision
# took 86-170 s and a deprovision 18-219 s under software emulation at
# load average 27, so one VM does two or three provisions in ten
# minutes while keeping at most one of CI's two cores busy with QEMU.
SOAK_DURATION ?= 1h
SOAK_SEED     ?= 0
SOAK_MACHINES ?= 200
SOAK_SITE_NODES ?= 3
SOAK_VMS      ?= 2
SOAK_UPGRADE_FROM ?= 75c47a5
soak: build images
	$(BIN)/outpost-bench -run soak -soak-duration $(SOAK_DURATION) -soak-seed $(SOAK_SEED) \
		-soak-machines $(SOAK_MACHINES) -soak-site-nodes $(SOAK_SITE_NODES) -soak-vms $(SOAK_VMS) \
		-soak-upgrade-from '$(SOAK_UPGRADE_FROM)' $(SOAK_FLAGS)

soak-ci:
	@$(MAKE) --no-print-directory soak SOAK_DURATION=10m SOAK_SEED=1 SOAK_MACHINES=50 SOAK_VMS=1

# A PNG of every console and portal page into docs/screenshots (the
# README links them): the browser tests (named Test...Browser...) of
# every package that uses the harness (internal/browsertest, its own
# tests aside: the appliance's console in the e2e package, central's
# portal in central/internal/portal) capture their pages with
# -browsertest.screenshots set; the other tests of those packages (the
# e2e package's) do not run.
screenshots: deps-test images
	@pkgs=$$($(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | \
		awk '$$1 !~ /browsertest$$/ && / github.com\/outposthq\/outpost\/internal\/browsertest( |$$)/ {print $$1}'); \
	if [ -z "$$pkgs" ]; then echo "screenshots: no package's tests use internal/browsertest"; exit 1; fi; \
	mkdir -p docs/screenshots && \
	$(GO) test -count=1 -run 'Browser' $$pkgs -args -browsertest.screenshots=$(CURDIR)/docs/screenshots

# Every fuzz target of the repository, FUZZJOBS at a time (1 by default), for FUZZTIME
# each (15 minutes by default; `make fuzz FUZZTIME=30s` for a quick
# pass); prints each target's executions, and fails if a target found a
# failing input (left under its package's testdata/fuzz/).
FUZZTIME ?= 15m
FUZZJOBS ?= 1
fuzz:
	@GO=$(GO) FUZZJOBS=$(FUZZJOBS) scripts/fuzz.sh $(FUZZTIME)

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './var/*' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
