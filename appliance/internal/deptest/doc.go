// Package deptest holds the test that keeps the architecture honest: which
// packages may import what (see deps_test.go). It has no code of its own.
package deptest
