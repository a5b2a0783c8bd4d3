package tftp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	tests := map[string]struct {
		name string
		want string // "" means refused
	}{
		"plain":                    {"ipxe.efi", "/srv/tftp/ipxe.efi"},
		"leading slash":            {"/ipxe.efi", "/srv/tftp/ipxe.efi"},
		"leading slashes":          {"///ipxe.efi", "/srv/tftp/ipxe.efi"},
		"subdir":                   {"efi/x86_64/ipxe.efi", "/srv/tftp/efi/x86_64/ipxe.efi"},
		"dot and double slash":     {"./efi//./ipxe.efi", "/srv/tftp/efi/ipxe.efi"},
		"trailing slash":           {"efi/", "/srv/tftp/efi"},
		"absolute is in root":      {"/etc/passwd", "/srv/tftp/etc/passwd"},
		"dots in a name":           {"...", "/srv/tftp/..."},
		"dotdot inside a name":     {"a..b", "/srv/tftp/a..b"},
		"unicode":                  {"zürich.ipxe", "/srv/tftp/zürich.ipxe"},
		"empty":                    {"", ""},
		"root":                     {"/", ""},
		"dot":                      {".", ""},
		"dot slash":                {"./", ""},
		"dotdot":                   {"..", ""},
		"dotdot escape":            {"../etc/passwd", ""},
		"absolute dotdot":          {"/../etc/passwd", ""},
		"dotdot that stays in":     {"a/../b", ""},
		"deep dotdot":              {"a/b/../../../x", ""},
		"trailing dotdot":          {"a/..", ""},
		"backslash dotdot":         {"..\\etc\\passwd", ""},
		"backslash":                {"efi\\ipxe.efi", ""},
		"windows drive":            {"C:\\boot\\x", ""},
		"nul":                      {"ipxe.efi\x00.png", ""},
		"newline":                  {"ipxe.efi\nlevel=ERROR", ""},
		"escape sequence":          {"\x1b[2Jipxe.efi", ""},
		"del":                      {"ipxe\x7f", ""},
		"invalid utf-8":            {"ipxe\xff.efi", ""},
		"too long":                 {strings.Repeat("a", maxNameLen+1), ""},
		"longest":                  {strings.Repeat("a", maxNameLen), "/srv/tftp/" + strings.Repeat("a", maxNameLen)},
		"dotdot after slashes":     {"//..//x", ""},
		"dotdot with dot":          {"./../x", ""},
		"encoded dotdot is a name": {"%2e%2e/x", "/srv/tftp/%2e%2e/x"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := resolve("/srv/tftp", tt.name)
			if tt.want == "" {
				if err == nil || !errors.Is(err, errBadName) || got != "" {
					t.Fatalf("resolve(%q) = %q, %v; want an errBadName", tt.name, got, err)
				}
				return
			}
			if err != nil || got != filepath.FromSlash(tt.want) {
				t.Fatalf("resolve(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain":    {"ipxe.efi", "ipxe.efi"},
		"control":  {"a\nb\x1b[0m\x00", `a\nb\x1b[0m\x00`},
		"quote":    {`a"b`, `a\"b`},
		"non-utf8": {"a\xffb", `a\xffb`},
		"unicode":  {"zürich", `z\u00fcrich`},
		"long":     {strings.Repeat("x", 200), strings.Repeat("x", maxLogName) + "..."},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := sanitize(tt.in); got != tt.want {
				t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzResolve checks that no name resolves outside the root, lexically
// (resolve) or on disk (Server.open, with symlinks out of the root in
// place), and that nothing panics.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"ipxe.efi", "/ipxe.efi", "//a//b/", "a/./b", "../x", "a/../../x", "..", ".", "/", "",
		"a\x00b", "..\\x", "C:\\x", "\xff", "....//x", "out", "out/secret", "abs/passwd",
		"secretlink", "in/../out/secret", "fifo", "dir", "dir/", "okfile", "inlink",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	root := filepath.Join(dir, "root")
	secret := filepath.Join(dir, "secret")
	mustWrite(f, secret, []byte("secret"))
	mustWrite(f, filepath.Join(root, "okfile"), []byte("ok"))
	mustWrite(f, filepath.Join(root, "dir", "file"), []byte("ok"))
	for link, target := range map[string]string{
		"out":        dir,
		"abs":        "/etc",
		"secretlink": secret,
		"dotdot":     "../secret",
		"inlink":     "okfile",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			f.Fatal(err)
		}
	}
	outside := []os.FileInfo{mustStat(f, secret)}
	if fi, err := os.Stat("/etc/passwd"); err == nil {
		outside = append(outside, fi)
	}
	s, err := New(Config{Root: root})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })

	f.Fuzz(func(t *testing.T, name string) {
		for _, r := range []string{"/srv/tftp", "rel/root", "/"} {
			checkResolve(t, r, name)
		}
		file, _, err := s.open(name)
		if err != nil {
			return
		}
		defer file.Close()
		fi, err := file.Stat()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outside {
			if os.SameFile(fi, o) {
				t.Fatalf("open(%q) opened %s, outside the root", name, o.Name())
			}
		}
	})
}

func checkResolve(t *testing.T, root, name string) {
	t.Helper()
	p, err := resolve(root, name)
	if err != nil {
		if !errors.Is(err, errBadName) || p != "" {
			t.Fatalf("resolve(%q, %q) = %q, %v", root, name, p, err)
		}
		return
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == "." || !filepath.IsLocal(rel) {
		t.Fatalf("resolve(%q, %q) = %q: not below the root (rel %q, %v)", root, name, p, rel, err)
	}
	if filepath.Clean(p) != p {
		t.Fatalf("resolve(%q, %q) = %q: not clean", root, name, p)
	}
	if strings.ContainsAny(p, "\x00\\") {
		t.Fatalf("resolve(%q, %q) = %q: NUL or backslash", root, name, p)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			t.Fatalf("resolve(%q, %q) = %q: accepted a \"..\" component", root, name, p)
		}
	}
}

func mustWrite(tb testing.TB, name string, data []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

func mustStat(tb testing.TB, name string) os.FileInfo {
	tb.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		tb.Fatal(err)
	}
	return fi
}
