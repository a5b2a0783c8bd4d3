package lab

import "context"

// T is what the lab needs of its caller: a test (testing.TB is one), or
// a Runner, for a program such as the demo that runs a lab outside a
// test. Fatal, Fatalf and Skipf stop the caller's goroutine.
type T interface {
	Cleanup(func())
	Context() context.Context
	Error(args ...any)
	Errorf(format string, args ...any)
	Failed() bool
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Helper()
	Logf(format string, args ...any)
	Name() string
	Skipf(format string, args ...any)
	TempDir() string
}
