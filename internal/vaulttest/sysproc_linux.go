package vaulttest

import "syscall"

// sysProcAttr makes the kernel kill the server when the test process dies,
// so a crashed test leaves no vault running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
