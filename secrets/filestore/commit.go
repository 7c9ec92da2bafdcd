package filestore

import (
	"errors"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeFn is one write. It runs inside a read-write transaction that other
// writes may share. What it returns is what the caller gets once the
// transaction commits: nil, or an error such as a conflict; a write that
// fails so must have changed nothing. An error wrapped by abort is a
// failure of the transaction itself (bbolt refusing a Put): the transaction
// rolls back and each write in it runs again alone. A writeFn may run more
// than once and must set its results anew each time.
type writeFn func(tx *bolt.Tx) error

// abortError marks a writeFn's error that must roll the transaction back.
type abortError struct{ err error }

func (e *abortError) Error() string { return e.err.Error() }

// abort marks err (if any) as a failure of the transaction.
func abort(err error) error {
	if err == nil {
		return nil
	}
	return &abortError{err}
}

// maxBatch bounds the writes one transaction carries.
const maxBatch = 1000

// writeOp is what one caller submits: one write, or the writes of a bulk
// call, which go into the same transaction.
type writeOp struct {
	fns  []writeFn
	errs []error // the outcome of each fn, set before done closes
	done chan struct{}
}

// wait returns the outcome of each write once they are durable.
func (op *writeOp) wait() []error {
	<-op.done
	return op.errs
}

// committer is the store's one writer: a goroutine that takes every write
// waiting when it is free and runs them in one bbolt transaction, so that
// concurrent writers share a commit and its fsyncs (group commit) while each
// still returns only once its write is durable. A lone writer waits for no
// one: its transaction starts at once. When the last commit was shared, the
// writer waits up to gatherWait for as many writes as it carried, since
// those writers are about to come back. Unlike bbolt's DB.Batch there is no
// fixed delay (10 ms by default there), and a write's refusal (a conflict)
// does not roll back the others.
type committer struct {
	db      *bolt.DB
	hooks   txHooks
	ops     chan *writeOp
	stopped chan struct{}
	// commits counts the transactions committed.
	commits atomic.Int64
}

// txHooks runs around every transaction of the committer.
type txHooks interface {
	// begin runs at the start of the transaction.
	begin(tx *bolt.Tx)
	// end runs after its writes; an error rolls it back.
	end(tx *bolt.Tx) error
	// committed runs once it has committed.
	committed()
}

func newCommitter(db *bolt.DB, hooks txHooks) *committer {
	w := &committer{db: db, hooks: hooks, ops: make(chan *writeOp, maxBatch), stopped: make(chan struct{})}
	go w.run()
	return w
}

// submit queues fns (at most maxBatch) to run in one transaction. It must
// not be called after stop.
func (w *committer) submit(fns ...writeFn) *writeOp {
	op := &writeOp{fns: fns, errs: make([]error, len(fns)), done: make(chan struct{})}
	w.ops <- op
	return op
}

// stop ends the writer once the writes already submitted are done.
func (w *committer) stop() {
	close(w.ops)
	<-w.stopped
}

func (w *committer) run() {
	defer close(w.stopped)
	batch := make([]*writeOp, 0, maxBatch)
	prev := 1 // writes in the last batch: about how many writers there are
	for op := range w.ops {
		batch = append(batch[:0], op)
		if w.drain(&batch) && writes(batch) < prev {
			// The writers of the last batch are coming back (their
			// results have only just been delivered): wait a moment for
			// them, so that they share this commit rather than the next.
			t := time.NewTimer(gatherWait)
			w.gather(&batch, prev, t.C)
			t.Stop()
		}
		prev = writes(batch)
		w.commit(batch)
	}
}

// writes counts the writes of batch.
func writes(batch []*writeOp) int {
	n := 0
	for _, op := range batch {
		n += len(op.fns)
	}
	return n
}

// gatherWait bounds the wait for more writes once some are in hand, a
// fraction of a commit's two fsyncs. A lone writer never waits.
const gatherWait = time.Millisecond

// drain appends the ops already queued to batch, up to maxBatch writes,
// without waiting. It reports false once the queue is closed.
func (w *committer) drain(batch *[]*writeOp) bool {
	for writes(*batch) < maxBatch {
		select {
		case op, ok := <-w.ops:
			if !ok {
				return false
			}
			*batch = append(*batch, op)
		default:
			return true
		}
	}
	return true
}

// gather appends ops to batch until it holds want writes (at most
// maxBatch) or timeout fires.
func (w *committer) gather(batch *[]*writeOp, want int, timeout <-chan time.Time) {
	for writes(*batch) < min(want, maxBatch) {
		select {
		case op, ok := <-w.ops:
			if !ok {
				return
			}
			*batch = append(*batch, op)
		case <-timeout:
			return
		}
	}
}

// commit runs batch in one transaction and delivers each outcome. If the
// transaction fails, each write runs again in a transaction of its own, so
// that only the one at fault reports the failure.
func (w *committer) commit(batch []*writeOp) {
	err := w.db.Update(func(tx *bolt.Tx) error {
		w.hooks.begin(tx)
		for _, op := range batch {
			for i, fn := range op.fns {
				err := fn(tx)
				if ae, ok := errors.AsType[*abortError](err); ok {
					return ae.err
				}
				op.errs[i] = err
			}
		}
		return w.hooks.end(tx)
	})
	if err == nil {
		w.hooks.committed()
		w.commits.Add(1)
	} else if writes(batch) > 1 {
		for _, op := range batch {
			for i, fn := range op.fns {
				op.errs[i] = w.commitOne(fn)
			}
		}
	} else {
		for _, op := range batch {
			for i := range op.errs {
				op.errs[i] = err
			}
		}
	}
	for _, op := range batch {
		close(op.done)
	}
}

// commitOne runs fn in a transaction of its own and returns its outcome.
func (w *committer) commitOne(fn writeFn) error {
	var outcome error
	err := w.db.Update(func(tx *bolt.Tx) error {
		w.hooks.begin(tx)
		outcome = fn(tx)
		if ae, ok := errors.AsType[*abortError](outcome); ok {
			return ae.err
		}
		return w.hooks.end(tx)
	})
	if err != nil {
		return err
	}
	w.hooks.committed()
	w.commits.Add(1)
	return outcome
}
