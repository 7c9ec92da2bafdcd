package main

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// auditSink is where serve writes the audit events (--audit-file): a file
// opened for appending, or stdout, one JSON line a write(2) with nothing
// buffered, so that an event is out of the process when the request that
// caused it is answered. It does not fsync: a crash of the machine (not of
// credsign) may lose what the kernel had not yet written.
type auditSink struct {
	// name is the file, "-" for stdout, "" for none.
	name string
	mu   sync.Mutex
	w    io.Writer
	f    *os.File // the file to close; nil for stdout and none
}

// openAuditSink opens the sink --audit-file names; "" means none (the
// events go with the diagnostic log).
func openAuditSink(name string, stdout io.Writer) (*auditSink, error) {
	s := &auditSink{name: name}
	switch name {
	case "":
	case "-":
		s.w = stdout
	default:
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening --audit-file: %w", err)
		}
		s.w, s.f = f, f
	}
	return s, nil
}

// writer is the sink as the service takes it; nil when there is none.
func (s *auditSink) writer() io.Writer {
	if s.w == nil {
		return nil
	}
	return s
}

// Write writes one event, whole, in one write; events never interleave.
func (s *auditSink) Write(event []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(event)
}

// Close closes the file, if any.
func (s *auditSink) Close() {
	if s.f != nil {
		_ = s.f.Close()
	}
}
