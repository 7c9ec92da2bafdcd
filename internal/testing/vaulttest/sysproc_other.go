//go:build !linux

package vaulttest

import (
	"syscall"
	"time"
)

// sysProcAttr has nothing to set on this platform: a crashed test may leave
// its vault running.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}

// waitState gives a signal time to reach every thread; this platform has no
// /proc to check.
func waitState(int, bool) error {
	time.Sleep(200 * time.Millisecond)
	return nil
}
