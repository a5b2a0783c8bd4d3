package agent

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// image.write decompresses each format, named or detected, and verifies
// the sha256 of what it downloaded.
func TestImageFormats(t *testing.T) {
	// Raw is bigger than a write chunk; the compressed ones are small, as
	// compressing is slow under the race detector.
	raw, small := testImage(chunk+mib+777), testImage(mib/4+777)
	tests := map[string]struct {
		compression, formatArg string
	}{
		"raw":           {formatRaw, "raw"},
		"gzip":          {formatGzip, "raw.gz"},
		"zstd":          {formatZstd, "raw.zst"},
		"xz":            {formatXz, "raw.xz"},
		"detect raw":    {formatRaw, ""},
		"detect gzip":   {formatGzip, ""},
		"detect zstd":   {formatZstd, "unknown"},
		"detect xz":     {formatXz, ""},
		"short name gz": {formatGzip, "gz"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			img := small
			if tt.compression == formatRaw {
				img = raw
			}
			data := compress(t, tt.compression, img)
			disk := newDisk(t, 1*mib) // smaller than the image: it grows
			f, _ := run(t, func(f *fakeAPI, cfg *Config) {
				f.artifacts["/img"] = &artifact{data: data}
			}, workflow.Action{Name: "image", Type: "image.write",
				Args: map[string]string{"device": disk, "url": "/img", "sha256": sha(data), "format": tt.formatArg}})
			st := waitDone(t, f)
			if st.Status != workflow.Succeeded {
				t.Fatalf("workflow %s: %s", st.Status, st.Reason)
			}
			if got := readFile(t, disk); !bytes.Equal(got, img) {
				t.Errorf("disk holds %d bytes, not the image's %d", len(got), len(img))
			}
			a, _ := st.Action("image")
			if want := fmt.Sprintf("%s, sha256 verified", tt.compression); !strings.Contains(a.Message, want) {
				t.Errorf("message %q lacks %q", a.Message, want)
			}
		})
	}
}

// A wrong checksum, the same on a second download, fails the attempt
// with both sums, and nothing after it runs.
func TestImageSHA256Mismatch(t *testing.T) {
	data := compress(t, formatZstd, testImage(2*mib))
	disk := newDisk(t, mib)
	want := sha([]byte("something else"))
	f, _ := run(t, func(f *fakeAPI, cfg *Config) { f.artifacts["/img"] = &artifact{data: data} },
		workflow.Action{Name: "image", Type: "image.write",
			Args: map[string]string{"device": disk, "url": "/img", "sha256": want}},
		workflow.Action{Name: "after", Type: "exec", Needs: []string{"image"}, Args: map[string]string{"command": "true"}})
	st := waitDone(t, f)
	if st.Status != workflow.Failed {
		t.Fatalf("workflow %s, want failed", st.Status)
	}
	a, _ := st.Action("image")
	wantMsg := fmt.Sprintf("sha256 mismatch: downloaded %s, expected %s", sha(data), want)
	if a.Message != wantMsg {
		t.Errorf("message = %q, want %q", a.Message, wantMsg)
	}
	if after, _ := st.Action("after"); after.Attempt != 0 {
		t.Errorf("the next action ran: %+v", after)
	}
	if n := f.requestCount("GET /img"); n != 1+redownloadsOnMismatch {
		t.Errorf("downloaded %d times, want %d", n, 1+redownloadsOnMismatch)
	}
}

// A download damaged on the way (one byte flipped, which TCP's checksum
// missed) does not hash to the image's sha256: the agent downloads it
// again within the attempt, and the image is written right.
func TestImageDamagedInTransfer(t *testing.T) {
	img := testImage(2 * mib)
	data := compress(t, formatGzip, img)
	disk := newDisk(t, mib)
	f, _ := run(t, func(f *fakeAPI, cfg *Config) { f.artifacts["/img"] = &artifact{data: data, damage: 1} },
		workflow.Action{Name: "image", Type: "image.write", Args: map[string]string{"device": disk, "url": "/img", "sha256": sha(data)}})
	st := waitDone(t, f)
	if st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	a, _ := st.Action("image")
	if a.Attempt != 1 || !strings.Contains(a.Message, "started over once") {
		t.Errorf("image: attempt %d, %q; want attempt 1 saying it started over once", a.Attempt, a.Message)
	}
	if n := f.requestCount("GET /img"); n != 2 {
		t.Errorf("downloaded %d times, want twice", n)
	}
	if got := readFile(t, disk); !bytes.Equal(got[:len(img)], img) {
		t.Error("disk does not hold the image")
	}
}

// A download that breaks or stalls mid-stream (the appliance
// restarting) is resumed where it broke, with Range and If-Range, feeding
// the same decompressor and hasher: the image is written right and sent
// once. A source that cannot go on from there (it ignores the Range,
// answers another, gives nothing to check it did not change) makes the
// download start over, and it still succeeds.
func TestImageDownloadResumed(t *testing.T) {
	img := testImage(3 * mib)
	data := compress(t, formatZstd, img)
	n := len(data)
	etag := `"sha256-` + sha(data) + `"`
	date := artifactDate.Format(http.TimeFormat)
	rangeFrom := func(off int, ifRange string) string { return fmt.Sprintf("bytes=%d- | %s", off, ifRange) }
	tests := map[string]struct {
		a        artifact
		requests []string // each request's "Range | If-Range"
		sentOnce bool     // the origin sent exactly the file's bytes
		message  string
	}{
		"cut once": {a: artifact{cuts: []int{n / 3}},
			requests: []string{" | ", rangeFrom(n/3, etag)}, sentOnce: true, message: "resumed once)"},
		"cut twice": {a: artifact{cuts: []int{n / 4, n / 3}},
			requests: []string{" | ", rangeFrom(n/4, etag), rangeFrom(n/4+n/3, etag)}, sentOnce: true, message: "resumed 2 times)"},
		"stalled": {a: artifact{cuts: []int{n / 4}, stallFor: 20 * time.Second},
			requests: []string{" | ", rangeFrom(n/4, etag)}, sentOnce: true, message: "resumed once)"},
		"by Last-Modified": {a: artifact{cuts: []int{n / 3}, validator: "date"},
			requests: []string{" | ", rangeFrom(n/3, date)}, sentOnce: true, message: "resumed once)"},
		"range ignored: starts over": {a: artifact{cuts: []int{n / 3}, noRange: true},
			requests: []string{" | ", rangeFrom(n/3, etag), " | "}, message: "resumed 0 times, started over once)"},
		"range elsewhere: starts over": {a: artifact{cuts: []int{n / 3}, shiftRange: 100},
			requests: []string{" | ", rangeFrom(n/3, etag), " | "}, message: "resumed 0 times, started over once)"},
		"no validator: starts over": {a: artifact{cuts: []int{n / 3}, validator: "none"},
			requests: []string{" | ", " | "}, message: "resumed 0 times, started over once)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			disk := newDisk(t, 8*mib)
			a := tt.a
			f, _ := run(t, func(f *fakeAPI, cfg *Config) {
				a.data = data
				f.artifacts["/img"] = &a
				cfg.StallTimeout = 300 * time.Millisecond
			}, workflow.Action{Name: "image", Type: "image.write",
				Args: map[string]string{"device": disk, "url": "/img", "sha256": sha(data)}})
			st := waitDone(t, f)
			if st.Status != workflow.Succeeded {
				t.Fatalf("workflow %s: %s", st.Status, st.Reason)
			}
			act, _ := st.Action("image")
			if act.Attempt != 1 || !strings.Contains(act.Message, "zstd, sha256 verified, "+tt.message) {
				t.Errorf("attempt %d: %q, want the first to say %q", act.Attempt, act.Message, tt.message)
			}
			if got := readFile(t, disk); !bytes.Equal(got, img) {
				t.Errorf("disk holds %d bytes, not the image's %d", len(got), len(img))
			}
			f.with(func(f *fakeAPI) {
				if diff := cmp.Diff(tt.requests, a.requests); diff != "" {
					t.Errorf("requests' Range | If-Range (-want +got):\n%s", diff)
				}
				if tt.sentOnce && a.sent != n {
					t.Errorf("the appliance sent %d bytes, want the file's %d once", a.sent, n)
				}
			})
		})
	}
}

// An image anywhere but on the appliance is refused, and not asked for:
// installers fetch only from the site, even when the appliance
// redirects them.
func TestImageOnlyFromTheAppliance(t *testing.T) {
	img := testImage(mib)
	other := newFakeAPI(t)
	other.addArtifact("/img", img)
	tests := map[string]struct {
		url, redirect string
		message       string
	}{
		"another host": {url: other.srv.URL + "/img?token=s3cret",
			message: "image url " + other.srv.URL + "/img?... is not on the appliance (%s): installers fetch only from the site"},
		"a redirect to another host": {url: "/img", redirect: other.srv.URL + "/img?token=s3cret",
			message: "download %s/img: redirected to " + other.srv.URL + "/img?..., not on the appliance: installers fetch only from the site"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			disk := newDisk(t, mib)
			before := other.requestCount("GET /img")
			f, _ := run(t, func(f *fakeAPI, cfg *Config) {
				if tt.redirect != "" {
					f.artifacts["/img"] = &artifact{data: img, redirect: tt.redirect}
				}
			}, workflow.Action{Name: "image", Type: "image.write",
				Args: map[string]string{"device": disk, "url": tt.url, "sha256": sha(img), "format": "raw"}})
			st := waitDone(t, f)
			a, _ := st.Action("image")
			want := strings.ReplaceAll(tt.message, "%s", f.srv.URL)
			if st.Status != workflow.Failed || a.Message != want || strings.Contains(st.Reason, "s3cret") {
				t.Errorf("workflow %s (%s), image %q: want failed with %q", st.Status, st.Reason, a.Message, want)
			}
			if n := other.requestCount("GET /img"); n != before {
				t.Errorf("the other host was asked %d times", n-before)
			}
			if got := readFile(t, disk); !bytes.Equal(got, bytes.Repeat([]byte{0xff}, mib)) {
				t.Error("the disk was written")
			}
		})
	}
}

// A missing image fails the attempt at once.
func TestImageNotFound(t *testing.T) {
	disk := newDisk(t, mib)
	f, _ := run(t, nil, workflow.Action{Name: "image", Type: "image.write",
		Args: map[string]string{"device": disk, "url": "/missing.raw", "sha256": sha(nil)}})
	st := waitDone(t, f)
	a, _ := st.Action("image")
	if st.Status != workflow.Failed || !strings.Contains(a.Message, "404") {
		t.Fatalf("workflow %s, image %q: want failed with 404", st.Status, a.Message)
	}
	if n := f.requestCount("GET /missing.raw"); n != 1 {
		t.Errorf("downloaded %d times, want once", n)
	}
}

// An image the appliance serves 503 for (it is restarting) is fetched
// again until it comes.
func TestImageServerUnavailable(t *testing.T) {
	img := testImage(mib)
	disk := newDisk(t, mib)
	f, _ := run(t, func(f *fakeAPI, cfg *Config) {
		f.artifacts["/img"] = &artifact{data: img}
		f.onReport = func(rep agentproto.Report) {
			if rep.Kind == agentproto.ReportStart {
				f.unavailable = 5 // the download's first tries
			}
		}
	}, workflow.Action{Name: "image", Type: "image.write",
		Args: map[string]string{"device": disk, "url": "/img", "sha256": sha(img), "format": "raw"}})
	st := waitDone(t, f)
	if st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	if got := readFile(t, disk); !bytes.Equal(got, img) {
		t.Error("disk does not hold the image")
	}
}

// A corrupt image fails the attempt: with its own sha256 it says how it
// is corrupt, without another download; with the expected one that the
// checksum differs, after one more download (the first might have been
// damaged on the way).
func TestImageCorrupt(t *testing.T) {
	good := compress(t, formatGzip, testImage(mib))
	bad := bytes.Clone(good)
	for i := len(bad) / 2; i < len(bad)/2+1000; i++ {
		bad[i] ^= 0x55
	}
	tests := map[string]struct {
		sha, message string
		downloads    int
	}{
		"its own checksum":      {sha(bad), "gzip: ", 1},
		"the expected checksum": {sha(good), fmt.Sprintf("sha256 mismatch: downloaded %s, expected %s", sha(bad), sha(good)), 1 + redownloadsOnMismatch},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			disk := newDisk(t, mib)
			f, _ := run(t, func(f *fakeAPI, cfg *Config) { f.artifacts["/img.gz"] = &artifact{data: bad} },
				workflow.Action{Name: "image", Type: "image.write",
					Args: map[string]string{"device": disk, "url": "/img.gz", "sha256": tt.sha}})
			st := waitDone(t, f)
			a, _ := st.Action("image")
			if st.Status != workflow.Failed || !strings.HasPrefix(a.Message, tt.message) {
				t.Errorf("workflow %s, image %q: want failed with %q", st.Status, a.Message, tt.message)
			}
			if n := f.requestCount("GET /img.gz"); n != tt.downloads {
				t.Errorf("downloaded %d times, want %d", n, tt.downloads)
			}
		})
	}
}

// image.write reports its progress while the download goes on.
func TestImageProgress(t *testing.T) {
	img := testImage(2*chunk + mib)
	disk := newDisk(t, mib)
	f, _ := run(t, func(f *fakeAPI, cfg *Config) {
		// A pause after the first chunk, for a progress report to go out.
		f.artifacts["/img"] = &artifact{data: img, cuts: []int{chunk + mib}, stallFor: 500 * time.Millisecond}
	}, workflow.Action{Name: "image", Type: "image.write",
		Args: map[string]string{"device": disk, "url": "/img", "sha256": sha(img), "format": "raw"}})
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	var found bool
	for _, r := range f.reports(agentproto.ReportProgress) {
		if r.Progress > 0 && r.Progress < 100 && strings.HasPrefix(r.Message, "wrote 4.0 MiB of 9.0 MiB (") {
			found = true
		}
	}
	if !found {
		t.Errorf("no progress report at the first chunk: %+v", f.reports(agentproto.ReportProgress))
	}
}

// TestProgressSurvivesOutage: the appliance is away (503) when the first
// progress report goes out, and the image is written before it is back.
// The report on its way is delivered before the finish, so the timeline
// shows the write's progress even across the outage.
func TestProgressSurvivesOutage(t *testing.T) {
	img := testImage(2*chunk + mib)
	disk := newDisk(t, mib)
	refusals := 0
	f, _ := run(t, func(f *fakeAPI, cfg *Config) {
		f.artifacts["/img"] = &artifact{data: img}
		f.fault = func(rep agentproto.Report) int {
			if rep.Kind == agentproto.ReportProgress && refusals < 5 {
				refusals++
				return http.StatusServiceUnavailable
			}
			return 0
		}
	}, workflow.Action{Name: "image", Type: "image.write",
		Args: map[string]string{"device": disk, "url": "/img", "sha256": sha(img), "format": "raw"}})
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	var kinds []string
	f.with(func(f *fakeAPI) {
		for _, r := range f.applied {
			kinds = append(kinds, r.Kind)
		}
	})
	if len(kinds) < 3 || kinds[0] != "start" || kinds[1] != "progress" || kinds[len(kinds)-1] != "finish" {
		t.Errorf("reports applied: %q, want start, progress (delivered through the outage), finish", kinds)
	}
}
