package conf

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDuration(t *testing.T) {
	tests := map[string]struct {
		json    string
		want    time.Duration
		wantErr string
	}{
		"seconds":     {json: `"90s"`, want: 90 * time.Second},
		"compound":    {json: `"1h2m"`, want: time.Hour + 2*time.Minute},
		"zero":        {json: `"0s"`, want: 0},
		"not a time":  {json: `"soon"`, wantErr: `duration "soon": time: invalid duration "soon"`},
		"bare number": {json: `90`, wantErr: "duration 90: time: missing unit"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tc.json), &d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Unmarshal(%s) = %v, want error %q", tc.json, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Duration(d) != tc.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tc.json, d, tc.want)
			}
			out, _ := json.Marshal(d)
			if want := `"` + tc.want.String() + `"`; string(out) != want {
				t.Errorf("Marshal = %s, want %s", out, want)
			}
		})
	}
}

// testConfig is a daemon's configuration in small.
type testConfig struct {
	Name    string   `json:"name"`
	Timeout Duration `json:"timeout"`
	Logging
}

func (c *testConfig) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Name, "name", c.Name, "a name")
	fs.Var(&c.Timeout, "timeout", "a duration")
	c.AddFlags(fs)
	return fs
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := func(body string) string {
		p := filepath.Join(dir, strings.ReplaceAll(body, "\n", "_")+".yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("name: from-file\ntimeout: 2m\nlog_level: debug\n")
	defaults := testConfig{Name: "default", Timeout: Duration(time.Second), Logging: Logging{LogLevel: "info", LogFormat: "text"}}
	tests := map[string]struct {
		args    []string
		want    testConfig
		wantErr string
	}{
		"defaults": {want: defaults},
		"flags":    {args: []string{"-name", "flag", "-timeout", "5s", "-log-format", "json"}, want: testConfig{Name: "flag", Timeout: Duration(5 * time.Second), Logging: Logging{"info", "json"}}},
		"file":     {args: []string{"-config", good}, want: testConfig{Name: "from-file", Timeout: Duration(2 * time.Minute), Logging: Logging{"debug", "text"}}},
		"flags win over the file, wherever they stand": {
			args: []string{"-name", "flag", "-config", good, "-log-level", "warn"},
			want: testConfig{Name: "flag", Timeout: Duration(2 * time.Minute), Logging: Logging{"warn", "text"}},
		},
		"unknown field":  {args: []string{"-config", file("nmae: x\n")}, wantErr: `unknown field "nmae"`},
		"bad yaml":       {args: []string{"-config", file("name: [\n")}, wantErr: "config: " + filepath.Join(dir, "name: [_.yaml")},
		"bad duration":   {args: []string{"-config", file("timeout: soon\n")}, wantErr: `duration "soon"`},
		"missing file":   {args: []string{"-config", filepath.Join(dir, "none.yaml")}, wantErr: "config: open "},
		"unknown flag":   {args: []string{"-nmae", "x"}, wantErr: "flag provided but not defined: -nmae"},
		"bad flag value": {args: []string{"-timeout", "soon"}, wantErr: `invalid value "soon" for flag -timeout`},
		"argument":       {args: []string{"-name", "x", "extra"}, wantErr: `config: unexpected argument "extra"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := defaults
			err := Load(c.flags(), tc.args, &c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load(%q) = %v, want error %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c); diff != "" {
				t.Errorf("Load(%q) (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestLoggingValidate(t *testing.T) {
	tests := map[string]struct {
		l    Logging
		want []string
	}{
		"text":  {l: Logging{"info", "text"}},
		"json":  {l: Logging{"debug", "json"}},
		"level": {l: Logging{"loud", "text"}, want: []string{`log_level "loud": want debug, info, warn or error`}},
		"both":  {l: Logging{"", "xml"}, want: []string{`log_level "": want debug, info, warn or error`, `log_format "xml": want text or json`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, err := range tc.l.Validate() {
				got = append(got, err.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	tests := map[string]struct {
		l    Logging
		want []string // the lines written for a debug and an info record
	}{
		"text at info":  {l: Logging{"info", "text"}, want: []string{"level=INFO msg=shown k=v"}},
		"text at debug": {l: Logging{"debug", "text"}, want: []string{"level=DEBUG msg=hidden k=v", "level=INFO msg=shown k=v"}},
		"json at warn":  {l: Logging{"warn", "json"}},
		"json at info":  {l: Logging{"info", "json"}, want: []string{`"level":"INFO","msg":"shown","k":"v"}`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			log := tc.l.Logger(&buf)
			log.Debug("hidden", "k", "v")
			log.Info("shown", "k", "v")
			var got []string
			for line := range strings.Lines(buf.String()) {
				// Drop the time, the one part that changes.
				_, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
				if strings.HasPrefix(line, "{") {
					_, rest, _ = strings.Cut(line, ",")
					rest = strings.TrimSpace(rest)
				}
				got = append(got, rest)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("logged (-want +got):\n%s", diff)
			}
		})
	}
	// The handler is the one the format names.
	if _, ok := (Logging{"info", "json"}).Logger(io.Discard).Handler().(*slog.JSONHandler); !ok {
		t.Error("json format: not a JSON handler")
	}
}
