package vaultstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/vault/api"

	"github.com/credsign/credsign/secrets"
)

// vaultError is an error from Vault or from the way to it, its text built
// by the store (never Vault's raw error, which may be long) and scrubbed of
// credentials. It unwraps to a secrets sentinel when one applies.
type vaultError struct {
	msg  string
	kind error // secrets.ErrUnavailable, ErrConflict, ErrNotFound or nil
	// status is Vault's HTTP status, 0 when there was no answer.
	status int
}

// Error returns the scrubbed message.
func (e *vaultError) Error() string { return e.msg }

// Unwrap returns the secrets sentinel the error is, or nil.
func (e *vaultError) Unwrap() error { return e.kind }

// redact replaces every non-empty credential in s.
func redact(s string, creds ...string) string {
	for _, c := range creds {
		if c != "" {
			s = strings.ReplaceAll(s, c, "<redacted>")
		}
	}
	return s
}

// classify turns what the Vault client returned into a vaultError. ctx is
// the call's context: if the caller cancelled it, its error is returned as
// is, so a cancelled request is not reported as an unavailable store; a
// deadline that passed means Vault did not answer in time. creds are
// scrubbed from the text.
func (s *Store) classify(ctx context.Context, err error, creds ...string) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	creds = append(creds, s.client.Token(), s.cfg.Token)
	var re *api.ResponseError
	if !errors.As(err, &re) {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
			if context.Cause(ctx) == errCallTimeout && !answered(ctx) {
				s.markSilent()
			}
			msg := fmt.Sprintf("Vault at %s did not answer within %v", s.cfg.Address, s.cfg.Timeout)
			if last := lastAttempt(ctx); last != "" {
				msg += " (last attempt: " + last + ")"
			}
			return &vaultError{msg: redact(msg+": "+secrets.ErrUnavailable.Error(), creds...), kind: secrets.ErrUnavailable}
		}
		return &vaultError{msg: redact(fmt.Sprintf("cannot reach Vault: %v: %v", err, secrets.ErrUnavailable), creds...), kind: secrets.ErrUnavailable}
	}
	text := redact(strings.Join(re.Errors, "; "), creds...)
	if text == "" {
		text = http.StatusText(re.StatusCode) // an empty body or none at all
	}
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	e := &vaultError{status: re.StatusCode}
	switch {
	case re.StatusCode == http.StatusBadRequest && strings.Contains(text, "check-and-set"):
		e.kind = secrets.ErrConflict
	case re.StatusCode == http.StatusNotFound:
		e.kind = secrets.ErrNotFound
	case re.StatusCode == http.StatusForbidden:
		// The token expired or lacks the policy: the store cannot work until
		// that is fixed (or a re-login succeeds), as for a sealed Vault.
		e.kind = secrets.ErrUnavailable
		text = "permission denied (token expired, revoked, or missing the credsign policy)"
	case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
		e.kind = secrets.ErrUnavailable
	}
	e.msg = fmt.Sprintf("Vault answered %d: %s", re.StatusCode, text)
	if e.kind != nil {
		e.msg += ": " + e.kind.Error()
	}
	return e
}

// permissionDenied reports whether err is Vault's 403.
func permissionDenied(err error) bool {
	var ve *vaultError
	return errors.As(err, &ve) && ve.status == http.StatusForbidden
}

// attempts remembers why the last retried attempt of a call failed, so that
// a call that runs out of time says why (refused, sealed, …) rather than
// only that time ran out.
//
// It also carries the store's view of Vault's health: a call that starts
// while Vault is known to be down (the last attempt of any call got no
// answer, 429 or 5xx, and none answered since) makes one attempt instead of
// retrying until its deadline, so that while Vault is stopped each request
// fails at once with "unavailable" (503 with Retry-After) rather than after
// the whole timeout. The first answer clears the mark.
type attempts struct {
	mu   sync.Mutex
	last string
	// refused counts attempts whose connection was refused: nothing listens
	// at the address, so after refusedRetries of them the call gives up
	// rather than retrying until its deadline.
	refused int
	// down is the store's mark; noRetry is its value when the call started.
	down    *atomic.Bool
	noRetry bool
	// answered is set once any attempt of the call got an HTTP answer.
	answered bool
}

type attemptsKey struct{}

// withAttempts returns ctx carrying a fresh attempts record tied to the
// store's down mark (nil: no mark).
func withAttempts(ctx context.Context, down *atomic.Bool) context.Context {
	a := &attempts{down: down}
	if down != nil {
		a.noRetry = down.Load()
	}
	return context.WithValue(ctx, attemptsKey{}, a)
}

// answered reports whether any attempt of the call in ctx got an answer.
func answered(ctx context.Context) bool {
	a, _ := ctx.Value(attemptsKey{}).(*attempts)
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.answered
}

func lastAttempt(ctx context.Context) string {
	a, _ := ctx.Value(attemptsKey{}).(*attempts)
	if a == nil {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// checkRetry is api.DefaultRetryPolicy (retry connection errors, 412, 429
// and 5xx but 501), recording why an attempt is retried.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, rerr := api.DefaultRetryPolicy(ctx, resp, err)
	a, _ := ctx.Value(attemptsKey{}).(*attempts)
	if a == nil {
		return retry, rerr
	}
	if resp != nil {
		a.mu.Lock()
		a.answered = true
		a.mu.Unlock()
	}
	if a.down != nil && ctx.Err() == nil {
		// An attempt that ran out of the call's time says nothing of Vault.
		// 412 is a KV consistency retry (an answer); the rest are no answer, 429, 5xx.
		a.down.Store(retry && rerr == nil && (resp == nil || resp.StatusCode != http.StatusPreconditionFailed))
	}
	if !retry {
		return retry, rerr
	}
	var why string
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL adds nothing here
		}
		why = err.Error()
	case resp != nil:
		// The client drains and closes the body of a retried response; one
		// not retried (Vault known down) goes back to the caller, so what
		// was read is put back in front of the rest.
		var body struct {
			Errors []string `json:"errors"`
		}
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		json.Unmarshal(head, &body)
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		why = fmt.Sprintf("Vault answered %d: %s", resp.StatusCode, strings.Join(body.Errors, "; "))
	}
	a.mu.Lock()
	a.last = why
	if errors.Is(err, syscall.ECONNREFUSED) {
		a.refused++
	}
	refused := a.refused
	a.mu.Unlock()
	if a.noRetry || refused > refusedRetries {
		return false, nil // Vault is down: fail now, the caller retries later
	}
	return retry, rerr
}

// refusedRetries is how many times a refused connection is retried within a
// call: enough to ride out a restart's brief gap, short of keeping a caller
// waiting the whole timeout for a Vault that is not running.
const refusedRetries = 1

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}
