package vaulttest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
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
	var failed error // a failure to read the threads' states ends the wait
	err := testutil.Poll(context.Background(), 5*time.Second, func() error {
		all, err := threadsStopped(pid, stopped)
		switch {
		case err != nil:
			failed = err
		case !all:
			return fmt.Errorf("process %d: threads not all stopped=%v after 5s", pid, stopped)
		}
		return nil
	})
	if failed != nil {
		return failed
	}
	return err
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
