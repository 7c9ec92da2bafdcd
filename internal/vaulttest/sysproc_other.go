//go:build !linux

package vaulttest

import "syscall"

// sysProcAttr has nothing to set on this platform: a crashed test may leave
// its vault running.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
