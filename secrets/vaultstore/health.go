package vaultstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credsign/credsign/secrets"
)

// A Vault that stops answering (frozen, or behind a network black hole)
// costs a call the whole Config.Timeout, since nothing tells the client
// that no answer is coming. So once a call has run out of its own timeout
// without a single answer from Vault, the store marks Vault silent: every
// call then fails at once with secrets.ErrUnavailable, and a probe goroutine
// asks Vault's health endpoint, one request at a time (each bounded by
// Config.Timeout, probeInterval apart), until Vault answers anything. Then
// calls go through again. A Vault that answers, even with an error (sealed,
// 5xx), is not silent: attempts handles that case.

// probeInterval is the pause between two probes of a silent Vault. A probe
// in flight when Vault wakes up gets its answer at once, so calls resume
// within about the time Vault takes to answer.
const probeInterval = 250 * time.Millisecond

// silence is the store's mark of a silent Vault.
type silence struct {
	mu      sync.Mutex
	on      bool
	since   time.Time
	probing bool // a probe goroutine is running
}

// silentErr returns the error of a call made while Vault is silent, or nil.
func (s *Store) silentErr() error {
	s.silent.mu.Lock()
	on, since := s.silent.on, s.silent.since
	s.silent.mu.Unlock()
	if !on {
		return nil
	}
	return &vaultError{
		msg: fmt.Sprintf("Vault at %s did not answer within %v and has not answered since (%v ago); not calling it until it does: %v",
			s.cfg.Address, s.cfg.Timeout, time.Since(since).Round(time.Millisecond), secrets.ErrUnavailable),
		kind: secrets.ErrUnavailable,
	}
}

// markSilent records that a call got no answer within Config.Timeout and
// starts the probe unless one runs.
func (s *Store) markSilent() {
	s.silent.mu.Lock()
	defer s.silent.mu.Unlock()
	if !s.silent.on {
		s.silent.on, s.silent.since = true, time.Now()
		s.log.Warn("vaultstore: Vault does not answer; calls fail at once until it answers again",
			"addr", s.cfg.Address, "timeout", s.cfg.Timeout)
	}
	if s.silent.probing || s.ctx.Err() != nil {
		return
	}
	s.silent.probing = true
	s.wg.Add(1)
	go s.probe()
}

// probe asks Vault for its health until it answers, then lifts the mark.
func (s *Store) probe() {
	defer s.wg.Done()
	c := s.client
	if clone, err := s.client.Clone(); err == nil {
		clone.SetMaxRetries(0) // one request per probe
		c = clone
	}
	for {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
		_, err := c.Sys().HealthWithContext(ctx)
		cancel()
		var re *api.ResponseError
		answered := err == nil || errors.As(err, &re)
		s.silent.mu.Lock()
		if answered || s.ctx.Err() != nil {
			if answered {
				s.log.Info("vaultstore: Vault answers again", "addr", s.cfg.Address,
					"silentFor", time.Since(s.silent.since).Round(time.Millisecond))
			}
			s.silent.on, s.silent.probing = false, false
			s.silent.mu.Unlock()
			return
		}
		s.silent.mu.Unlock()
		select {
		case <-s.ctx.Done():
		case <-time.After(probeInterval):
		}
	}
}
