// Package logbuf batches log lines: a Writer keeps what is written in a
// buffer and writes it out every interval (sooner when the buffer fills,
// and on Close), so that a busy server pays one write system call per batch
// instead of one per log line. A crash (kill -9, OOM) loses at most the
// lines of one interval.
package logbuf

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// bufferSize is the buffer of a Writer; a write that does not fit flushes
// it first (bufio's rule).
const bufferSize = 64 << 10

// Writer is an io.Writer that batches its writes. Each Write is kept whole
// and in order, whatever the number of goroutines writing.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer     // the destination
	buf    *bufio.Writer // nil: every Write goes to w at once
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// New returns a Writer that writes to w every interval. With an interval
// of 0 or less each Write goes to w at once.
func New(w io.Writer, interval time.Duration) *Writer {
	lw := &Writer{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	if interval <= 0 {
		close(lw.done)
		return lw
	}
	lw.buf = bufio.NewWriterSize(w, bufferSize)
	go lw.run(interval)
	return lw
}

func (lw *Writer) run(interval time.Duration) {
	defer close(lw.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = lw.Flush()
		case <-lw.stop:
			return
		}
	}
}

// Write keeps p (a log line) for the next batch; after Close it writes p at
// once.
func (lw *Writer) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.buf == nil || lw.closed {
		return lw.w.Write(p)
	}
	return lw.buf.Write(p)
}

// Flush writes out what is buffered.
func (lw *Writer) Flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.buf == nil {
		return nil
	}
	return lw.buf.Flush()
}

// Close flushes and stops the periodic flushing; later writes go out at
// once. It is safe to call more than once.
func (lw *Writer) Close() error {
	lw.mu.Lock()
	already := lw.closed
	lw.closed = true
	lw.mu.Unlock()
	if !already && lw.buf != nil {
		close(lw.stop)
		<-lw.done
	}
	return lw.Flush()
}
