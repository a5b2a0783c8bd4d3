package conf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRun(t *testing.T) {
	load := func(args []string) (*testConfig, error) {
		c := &testConfig{Logging: Logging{"info", "text"}}
		if err := Load(c.flags(), args, c); err != nil {
			return nil, err
		}
		if errs := c.Validate(); len(errs) > 0 {
			return nil, fmt.Errorf("config: %w", errors.Join(errs...))
		}
		return c, nil
	}
	tests := map[string]struct {
		args       []string
		runErr     error
		wantCode   int
		wantStdout string
		wantStderr []string // substrings, in order
	}{
		"runs":        {args: []string{"-name", "n1"}, wantCode: 0, wantStdout: "running n1\n"},
		"bad config":  {args: []string{"-log-level", "loud"}, wantCode: 2, wantStderr: []string{`testd: config: log_level "loud"`}},
		"bad flag":    {args: []string{"-x"}, wantCode: 2, wantStderr: []string{"testd: flag provided but not defined: -x"}},
		"run fails":   {args: []string{"-name", "n1"}, runErr: errors.New("bind: address in use"), wantCode: 1, wantStdout: "running n1\n", wantStderr: []string{`level=ERROR msg="testd stopped" err="bind: address in use"`, "testd: bind: address in use\n"}},
		"json logger": {args: []string{"-log-format", "json"}, runErr: errors.New("boom"), wantCode: 1, wantStdout: "running \n", wantStderr: []string{`"msg":"testd stopped","err":"boom"`, "testd: boom\n"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			run := func(ctx context.Context, cfg *testConfig, log *slog.Logger, out io.Writer) error {
				if ctx != t.Context() {
					t.Error("run did not get Run's context")
				}
				fmt.Fprintf(out, "running %s\n", cfg.Name)
				return tc.runErr
			}
			code := Run(t.Context(), "testd", tc.args, &stdout, &stderr, load, run)
			if code != tc.wantCode {
				t.Errorf("code %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if diff := cmp.Diff(tc.wantStdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			rest := stderr.String()
			for _, want := range tc.wantStderr {
				_, after, ok := strings.Cut(rest, want)
				if !ok {
					t.Fatalf("stderr %q lacks %q (after what came before)", stderr.String(), want)
				}
				rest = after
			}
			if len(tc.wantStderr) == 0 && stderr.Len() > 0 {
				t.Errorf("stderr %q, want nothing", stderr.String())
			}
		})
	}
}
