package httpboot

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/machinetrace/tracetest"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// traceWorkflow makes machine m1 (MAC 52:54:00:12:34:56, ready, leased)
// provisioning under a workflow with traceparent tp, as the site does
// for an order.
func traceWorkflow(t *testing.T, f *fixture, tp string) {
	t.Helper()
	f.put(t, &store.Template{Name: "fixture", Actions: []store.Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}})
	apptest.Put(t, f.db, t0, &store.Workflow{ID: "wf-m1", MachineID: "m1", Template: "fixture", Purpose: store.PurposeProvision,
		Nonce: "nonce-m1", Traceparent: tp})
}

// The installer's script of a workflow with a traceparent puts it on the
// kernel command line (testdata/install-traced.ipxe); one without has
// none (testdata/install.ipxe, TestGolden).
func TestInstallScriptTraceparent(t *testing.T) {
	parallel(t)
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	f := newFixture(t, installer(), machine("m1", "52:54:00:12:34:56", store.StateReady))
	traceWorkflow(t, f, tp)
	res, got := f.get(t, base+"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=efi")
	checkScriptHeaders(t, res)
	if !strings.Contains(got, " outpost.traceparent="+tp+" ") {
		t.Errorf("no outpost.traceparent=%s on the kernel line:\n%s", tp, got)
	}
	golden := filepath.Join("testdata", "install-traced.ipxe")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("script differs from %s (-want +got):\n%s", golden, diff)
	}
}

// A traceparent that is not one never reaches a script: the machine gets
// the error script.
func TestInstallScriptBadTraceparent(t *testing.T) {
	parallel(t)
	f := newFixture(t, installer(), machine("m1", "52:54:00:12:34:56", store.StateReady))
	traceWorkflow(t, f, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	// The site refuses such a workflow (store.Workflow.Validate): this
	// one is written past its rules, as a damaged or foreign store might
	// hold it.
	err := f.db.Update(func(tx *store.Tx) error {
		w, err := store.Get[store.Workflow](tx, "wf-m1")
		if err != nil {
			return err
		}
		w.Traceparent = "00-x initrd=evil"
		return tx.UnsafePut(w, store.Write{Index: w.Version + 1, Time: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, got := f.get(t, base+"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=efi")
	if v := variantOf(t, got); v != variantError || strings.Contains(got, "evil") {
		t.Errorf("script of a workflow with a bad traceparent: variant %s:\n%s", v, got)
	}
}

// Each fetch by a traced machine is a boot.fetch span, child of its
// workflow's traceparent, saying what was fetched (script, kernel,
// initrd, other), with the status and size; another machine's fetches
// record nothing.
func TestFetchSpans(t *testing.T) {
	rec := tracetest.Start(t)
	tp, end := rec.Root(t, tracing.SpanOrderApply)
	end()
	f := newFixture(t, installer(), machine("m1", "52:54:00:12:34:56", store.StateReady),
		machine("m2", "52:54:00:12:34:57", store.StateProvisioning))
	traceWorkflow(t, f, tp)
	files := map[string]int{"installer/vmlinuz": 3000, "installer/initrd.gz": 5000, "ipxe.efi": 700}
	for name, size := range files {
		p := filepath.Join(f.artifacts, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m1, m2 := f.leased["52:54:00:12:34:56"], f.leased["52:54:00:12:34:57"]
	_, script := f.get(t, base+"/ipxe/52:54:00:12:34:56.ipxe")
	for _, from := range []string{m1, m2} {
		for _, p := range []string{"/artifacts/installer/vmlinuz", "/artifacts/installer/initrd.gz", "/artifacts/ipxe.efi", "/artifacts/missing"} {
			f.getFrom(t, from, base+p)
		}
	}
	f.get(t, base+"/ipxe/52:54:00:12:34:57.ipxe")

	type fetch struct{ Path, File, Machine, MAC, Status, Bytes, Parent string }
	var got []fetch
	for _, s := range rec.Named(t, tp, tracing.SpanBootHTTP) {
		got = append(got, fetch{s.Attrs[attrPath], s.Attrs[tracing.AttrBootFile], s.Attrs[tracing.AttrMachine], s.Attrs[tracing.AttrMAC],
			s.Attrs[attrStatus], s.Attrs[attrBytes], s.Parent})
		if (s.Error != "") != (s.Attrs[attrStatus] == "404") {
			t.Errorf("%s: error %q with status %s", s.Attrs[attrPath], s.Error, s.Attrs[attrStatus])
		}
	}
	p, mac := tracetest.SpanID(tp), "52:54:00:12:34:56"
	want := []fetch{
		{"/ipxe/52:54:00:12:34:56.ipxe", "script", "m1", mac, "200", strconv.Itoa(len(script)), p},
		{"/artifacts/installer/vmlinuz", "kernel", "m1", mac, "200", "3000", p},
		{"/artifacts/installer/initrd.gz", "initrd", "m1", mac, "200", "5000", p},
		{"/artifacts/ipxe.efi", "other", "m1", mac, "200", "700", p},
		{"/artifacts/missing", "other", "m1", mac, "404", "10", p},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("boot.fetch spans (-want +got):\n%s", diff)
	}
	for _, s := range rec.All(t) {
		if s.Attrs[tracing.AttrMachine] == "m2" {
			t.Errorf("m2, whose workflow has no traceparent, recorded %s %s", s.Name, s.Attrs[attrPath])
		}
	}
}

// A traced machine's artifact still reaches the connection as the file
// (sendfile): the span's writer passes io.ReaderFrom on.
func TestTracedArtifactSendfile(t *testing.T) {
	rec := tracetest.Start(t)
	tp, end := rec.Root(t, tracing.SpanOrderApply)
	end()
	f := newFixture(t, installer(), machine("m1", "52:54:00:12:34:56", store.StateReady))
	traceWorkflow(t, f, tp)
	checkSendfile(t, &artifactServer{fixture: f}, netip.MustParseAddr(f.leased["52:54:00:12:34:56"]))
	spans := rec.Named(t, tp, tracing.SpanBootHTTP)
	if len(spans) != 1 || spans[0].Attrs[attrBytes] != strconv.Itoa(8<<20) || spans[0].Attrs[tracing.AttrBootFile] != "other" {
		t.Errorf("spans of the fetch: %+v", spans)
	}
}

// An installer whose kernel and initrd are artifacts, fetched by digest,
// is traced as such: the digest names the kernel or the initrd.
func TestFetchSpansByDigest(t *testing.T) {
	rec := tracetest.Start(t)
	tp, end := rec.Root(t, tracing.SpanOrderApply)
	end()
	kernel, initrd := strings.Repeat("4b", 32), strings.Repeat("1d", 32)
	f := newFixture(t, &store.Image{Name: "installer", Type: store.ImageInstaller, Kernel: "sha256:" + kernel, Initrd: "SHA256:" + strings.ToUpper(initrd)},
		machine("m1", "52:54:00:12:34:56", store.StateReady))
	traceWorkflow(t, f, tp)
	from := f.leased["52:54:00:12:34:56"]
	for _, h := range []string{kernel, initrd, strings.Repeat("ee", 32)} {
		f.getFrom(t, from, base+"/artifacts/sha256/"+h)
	}
	got := map[string]string{}
	for _, s := range rec.Named(t, tp, tracing.SpanBootHTTP) {
		got[strings.TrimPrefix(s.Attrs[attrPath], "/artifacts/sha256/")] = s.Attrs[tracing.AttrBootFile]
	}
	want := map[string]string{kernel: "kernel", initrd: "initrd", strings.Repeat("ee", 32): "other"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("boot files by digest (-want +got):\n%s", diff)
	}
}
