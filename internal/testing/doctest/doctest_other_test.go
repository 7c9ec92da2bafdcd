//go:build !linux

package doctest

import "testing"

// TestDocs needs Linux: each document runs in network and PID namespaces
// of its own (doctest_linux_test.go).
func TestDocs(t *testing.T) {
	t.Skip("the doc test runs each document in Linux network and PID namespaces; run it on Linux")
}
