package vaulttest

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"time"
)

// sysProcAttr makes the kernel kill the server when the test process dies,
// so a crashed test leaves no vault running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// waitState waits until every thread of process pid is stopped (stopped
// true) or none is (false): a signal reaches a process's threads one by one,
// and a thread not stopped yet still answers requests.
func waitState(pid int, stopped bool) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		all, err := threadsStopped(pid, stopped)
		if err != nil || all {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d: threads not all stopped=%v after 5s", pid, stopped)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func threadsStopped(pid int, stopped bool) (bool, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread exited
		}
		// The state follows the command name in parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, fmt.Errorf("unexpected %s/stat", task.Name())
		}
		if isStopped := b[i+2] == 'T'; isStopped != stopped {
			return false, nil
		}
	}
	return true, nil
}
