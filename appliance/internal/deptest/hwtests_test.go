package deptest

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHWTestsRun: make test skips the tests the Makefile's
// HWTESTS_NAMES lists, by name in every package, and make test-hw runs
// them in the packages HWPKGS lists only. A name that no test has, or a
// test of that name in another package, would then run nowhere.
func TestHWTestsRun(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	vars := makeVars(t, filepath.Join(root, "Makefile"), "HWTESTS_NAMES", "HWPKGS")
	names, pkgs := strings.Fields(vars["HWTESTS_NAMES"]), strings.Fields(vars["HWPKGS"])
	if len(names) == 0 || len(pkgs) == 0 {
		t.Fatalf("the Makefile's HWTESTS_NAMES (%d names) or HWPKGS (%d packages) is empty", len(names), len(pkgs))
	}
	for i, p := range pkgs {
		pkgs[i] = filepath.Clean(p)
	}
	where := testFuncs(t, root)
	for _, name := range names {
		dirs := where[name]
		if len(dirs) == 0 {
			t.Errorf("HWTESTS_NAMES lists %s, which no test file defines", name)
		}
		for _, dir := range dirs {
			if !slices.Contains(pkgs, dir) {
				t.Errorf("%s in %s: make test skips it, and make test-hw does not run that package (HWPKGS)", name, dir)
			}
		}
	}
}

// makeVars reads the named variables' values from a Makefile's simple
// assignments (NAME := value), joining continued lines.
func makeVars(t *testing.T, path string, names ...string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if cur == "" {
			name, value, ok := strings.Cut(line, ":=")
			if !ok || !slices.Contains(names, strings.TrimSpace(name)) {
				continue
			}
			cur, line = strings.TrimSpace(name), value
		}
		value, more := strings.CutSuffix(line, "\\")
		out[cur] += " " + value
		if !more {
			cur = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// testFuncs maps each top-level Test function of the module's test
// files to the directories, relative to root, that define it.
func testFuncs(t *testing.T, root string) map[string][]string {
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "var" || d.Name() == "tools") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(rel)
		for _, decl := range file.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") && !slices.Contains(out[fn.Name.Name], dir) {
				out[fn.Name.Name] = append(out[fn.Name.Name], dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
