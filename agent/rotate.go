package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/credsign/credsign/agent/client"
)

// A device token minted with a lifetime (csd_3.<id>.<device>.<minted>.<expires>.<MAC>)
// carries when it was minted and when it expires. Before it ends the agent
// exchanges it for a new one (POST /v1/devices/{id}/tokens/rotate), with
// the token as its only credential, and writes the new one to the token
// file atomically. A device offline past the expiry cannot rotate: its
// token is refused ("token expired: re-enrol") and it must be enrolled
// again.

// TokenRotator is implemented by sources whose device token can be
// exchanged for a new one before it expires (HTTPSource).
type TokenRotator interface {
	// TokenLife returns when the current token was minted and when it
	// expires; zero times for a token that does not expire.
	TokenLife() (minted, expires time.Time, err error)
	// RotateToken exchanges the current token for a new one, keeps the new
	// one (in the token file, atomically) and returns when it expires.
	RotateToken(ctx context.Context) (time.Time, error)
}

// RotateAt is the point of a token's life at which it is rotated: two
// thirds of the way from mint to expiry, which leaves a third of the
// lifetime for retries while the server or the network is away.
func RotateAt(minted, expires time.Time) time.Time {
	return minted.Add(expires.Sub(minted) * 2 / 3)
}

// tokenLife reads the mint and expiry times a device token text carries
// (csd_3 tokens); zero times for any other token.
func tokenLife(tok string) (minted, expires time.Time) {
	rest, ok := strings.CutPrefix(tok, "csd_3.")
	if !ok {
		return time.Time{}, time.Time{}
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 5 {
		return time.Time{}, time.Time{}
	}
	m, err1 := strconv.ParseInt(parts[2], 10, 64)
	e, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || e <= m {
		return time.Time{}, time.Time{}
	}
	return time.Unix(0, m), time.Unix(0, e)
}

// TokenLife implements TokenRotator.
func (s *HTTPSource) TokenLife() (time.Time, time.Time, error) {
	tok, err := s.readToken()
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	m, e := tokenLife(tok)
	return m, e, nil
}

// RotateToken implements TokenRotator. The new token is written to the
// token file before it is used (see ReplaceFile); without a token file it
// is kept in memory.
func (s *HTTPSource) RotateToken(ctx context.Context) (time.Time, error) {
	tok, err := s.readToken()
	if err != nil {
		return time.Time{}, err
	}
	auth := func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
	resp, err := s.c.RotateDeviceTokenWithResponse(ctx, s.deviceID, auth)
	if err != nil {
		return time.Time{}, fmt.Errorf("rotate the device token: %w", err)
	}
	created := resp.JSON201
	if created == nil || !strings.HasPrefix(created.Token, "csd_") {
		var p *client.Problem
		for _, q := range []*client.Problem{resp.ApplicationProblemJSON401, resp.ApplicationProblemJSON429,
			resp.ApplicationProblemJSON503, resp.ApplicationProblemJSONDefault} {
			if q != nil {
				p = q
			}
		}
		return time.Time{}, fmt.Errorf("rotate the device token: %w", fetchError(resp.HTTPResponse, p))
	}
	if s.tokenFile != "" {
		if err := ReplaceFile(s.tokenFile, []byte(created.Token+"\n")); err != nil {
			// The new token is lost; the old one works for the overlap,
			// and rotating it again is refused: say what to do.
			return time.Time{}, fmt.Errorf("rotate the device token: writing %s: %w (the new token is lost; re-enrol if the old one stops working)", s.tokenFile, err)
		}
	} else {
		s.mu.Lock()
		s.token = created.Token
		s.mu.Unlock()
	}
	_, exp := tokenLife(created.Token)
	return exp, nil
}

// ReplaceFile replaces path with data, mode 0600, all or nothing: a
// temporary file in the same directory, written and synced, renamed over
// path, then the directory synced, so that after a crash path holds the old
// or the new content, never a mix.
func ReplaceFile(path string, data []byte) error {
	tmp, err := syncedTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after the rename, a no-op
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncedTemp writes data to a new temporary file of path's directory,
// mode 0600, synced and closed, and returns its name, for the caller to
// put in place and then remove (a no-op once renamed). A failure removes
// it.
func syncedTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// errRefused reports whether err is the server refusing the token itself
// (401): expired, revoked, or rotated already. Rotating again cannot help.
func errRefused(err error) bool {
	var fe *FetchError
	return errors.As(err, &fe) && fe.Status == http.StatusUnauthorized
}

// rotateTokens rotates r's device token at RotateAt of each token's life,
// retrying failures with back-off b, until ctx ends. A token without
// expiry is looked at again every recheck (the token file may be replaced
// by a re-enrolment). Agent.Run and Exec run it beside their work.
func rotateTokens(ctx context.Context, r TokenRotator, b Backoff, log *slog.Logger, onEvent func(Event)) {
	const recheck = time.Hour
	retry := retries{b: b}
	for ctx.Err() == nil {
		minted, expires, err := r.TokenLife()
		if err != nil || expires.IsZero() {
			if sleep(ctx, recheck) != nil {
				return
			}
			continue
		}
		if wait := time.Until(RotateAt(minted, expires)); wait > 0 {
			if sleep(ctx, min(wait, recheck)) != nil {
				return
			}
			continue
		}
		next, err := r.RotateToken(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			retry.reset()
			log.Info("device token rotated", "expires", next.UTC().Format(time.RFC3339))
			emit(onEvent, Event{Kind: EventTokenRotated})
			continue
		case errRefused(err):
			// Expired, revoked or rotated already: the device must be
			// enrolled again (or given a new token file).
			log.Error("device token refused: re-enrol the device", "err", err)
		default:
			log.Warn("device token rotation failed", "err", err, "expires", expires.UTC().Format(time.RFC3339))
		}
		emit(onEvent, Event{Kind: EventTokenRotateFailed, Err: err})
		d := retry.next(err)
		if errRefused(err) {
			d = max(d, recheck)
		}
		if sleep(ctx, d) != nil {
			return
		}
	}
}

// startRotation runs rotateTokens beside the caller's work when src can
// rotate its token; the returned function stops it and waits.
func startRotation(ctx context.Context, src Source, b Backoff, log *slog.Logger, onEvent func(Event)) (stop func()) {
	r, ok := src.(TokenRotator)
	if !ok {
		return func() {}
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); rotateTokens(rctx, r, b, log, onEvent) }()
	return func() { cancel(); <-done }
}
