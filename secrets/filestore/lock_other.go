//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package filestore

import (
	"fmt"
	"os"
)

// lockDir opens path, creating it if needed. This platform has no flock, so
// nothing stops a second process from opening the same directory.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}
