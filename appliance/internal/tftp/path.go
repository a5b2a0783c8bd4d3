package tftp

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// errBadName is a requested name the server refuses to look up at all.
var errBadName = errors.New("tftp: file name refused")

// maxNameLen bounds a requested name. A request packet holds at most 512
// bytes of name, mode and options anyway.
const maxNameLen = 512

// resolve returns the path under root that the requested TFTP file name
// refers to, or an error wrapping errBadName. It is pure: it reads the name
// only and never the file system, so it cannot see symlinks. The server
// opens the name through an os.Root (see localName), which refuses any
// symlink leading out of root.
func resolve(root, name string) (string, error) {
	rel, err := localName(name)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, rel), nil
}

// localName checks a requested TFTP file name and returns it as a clean
// path relative to the served directory. It refuses empty names, names
// over maxNameLen bytes, invalid UTF-8, NUL and other control characters,
// backslashes (a Windows separator that other layers might honour), any
// ".." component, and names that name the directory itself. Leading
// slashes are stripped: "/ipxe.efi" is "ipxe.efi", and "/etc/passwd" is
// looked up as "etc/passwd" inside the served directory.
func localName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty", errBadName)
	}
	if len(name) > maxNameLen {
		return "", fmt.Errorf("%w: longer than %d bytes", errBadName, maxNameLen)
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not UTF-8", errBadName)
	}
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f:
			return "", fmt.Errorf("%w: control character %U", errBadName, r)
		case r == '\\':
			return "", fmt.Errorf("%w: backslash", errBadName)
		}
	}
	trimmed := strings.TrimLeft(name, "/")
	for elem := range strings.SplitSeq(trimmed, "/") {
		if elem == ".." {
			return "", fmt.Errorf("%w: \"..\" component", errBadName)
		}
	}
	rel := path.Clean(trimmed)
	if rel == "." || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: not a file below the root", errBadName)
	}
	return filepath.FromSlash(rel), nil
}

// maxLogName bounds a requested name as logged.
const maxLogName = 128

// sanitize makes a requested name safe to log: truncated, with anything
// outside printable ASCII escaped as in a Go string literal.
func sanitize(name string) string {
	suffix := ""
	if len(name) > maxLogName {
		name, suffix = name[:maxLogName], "..."
	}
	q := strconv.QuoteToASCII(name)
	return q[1:len(q)-1] + suffix
}
