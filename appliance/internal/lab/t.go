package lab

import "testing"

// T is what the lab needs of its caller: a test, or a program such as the
// demo that runs a lab outside a test.
type T = testing.TB
