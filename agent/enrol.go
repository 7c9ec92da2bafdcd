package agent

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credsign/credsign/agent/client"
)

// ErrEnrolled is returned by Enrol when the device token file already
// exists: the device enrolled before (an enrolment token never enrols a
// device twice), so there is nothing to do.
var ErrEnrolled = errors.New("already enrolled: the device token file exists")

// EnrolConfig configures Enrol.
type EnrolConfig struct {
	// Server is the credsign base URL (https://, or http:// on loopback).
	Server string
	// Roots verifies the server's TLS certificate; nil: the system roots.
	Roots *x509.CertPool
	// EnrolmentTokenFile holds the enrolment token (cse_…), flashed on the
	// device with its firmware.
	EnrolmentTokenFile string
	// DeviceID is the ID to enrol the device as.
	DeviceID string
	// TokenFile is where the device token goes: created mode 0600, never
	// replacing a file. Unused with a Prover.
	TokenFile string
	// Prover, when set, signs the enrolment's DPoP proof with the device
	// key: the server binds that key to the device and issues no token.
	Prover *Prover
	// Attest, when set, runs TPM attestation (POST /v1/enrol/attest, then
	// the TPM's answer) before each enrol request, a challenge being good
	// for one answer, and returns the request's attestation member; auth
	// adds the enrolment token. It goes with a Prover whose key it
	// certifies. Its errors stop Enrol.
	Attest func(ctx context.Context, c *client.ClientWithResponses, auth client.RequestEditorFn, deviceID string) (*client.TpmAttestation, error)
	// Timeout bounds one request; default 30s.
	Timeout time.Duration
	// Backoff paces the retries of failures that may clear (network, 429,
	// 503); the zero value is the agent's default.
	Backoff Backoff
	// Logger receives the retries; nil discards them.
	Logger *slog.Logger
}

// Enrolment is what an enrolment gave, besides the device token written
// to the token file.
type Enrolment struct {
	DeviceID, Group, TokenID string
	// KeyID is the device key bound at enrolment (with a Prover).
	KeyID string
}

// Enrol enrols the device with its enrolment token and writes the device
// token it receives to cfg.TokenFile, atomically and mode 0600; the token
// is never logged or returned. It retries failures that may clear (the
// network, 429, 5xx) with back-off until ctx ends, and stops at once on a
// refusal (a FetchError that Permanent reports). When the token file
// exists already it returns ErrEnrolled without asking the server.
func Enrol(ctx context.Context, cfg EnrolConfig) (Enrolment, error) {
	switch {
	case cfg.Server == "":
		return Enrolment{}, errors.New("no credsign server (--server or CREDSIGN_SERVER)")
	case cfg.DeviceID == "":
		return Enrolment{}, errors.New("no device id (--device or CREDSIGN_DEVICE)")
	case cfg.EnrolmentTokenFile == "":
		return Enrolment{}, errors.New("no enrolment token (--enrolment-token-file or CREDSIGN_ENROLMENT_TOKEN_FILE)")
	case cfg.TokenFile == "" && cfg.Prover == nil:
		return Enrolment{}, errors.New("no device token file to write (--token-file or CREDSIGN_TOKEN_FILE), nor a device key (--key-file)")
	case cfg.Attest != nil && cfg.Prover == nil:
		return Enrolment{}, errors.New("TPM attestation needs the device key it certifies")
	}
	if cfg.Prover == nil {
		if _, err := os.Lstat(cfg.TokenFile); err == nil {
			return Enrolment{}, fmt.Errorf("%w (%s)", ErrEnrolled, cfg.TokenFile)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Enrolment{}, fmt.Errorf("token file: %w", err)
		}
	}
	b, err := os.ReadFile(cfg.EnrolmentTokenFile)
	if err != nil {
		return Enrolment{}, fmt.Errorf("enrolment token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return Enrolment{}, fmt.Errorf("enrolment token file %s is empty", cfg.EnrolmentTokenFile)
	}
	c, err := newClient(cfg.Server, cfg.Roots, cfg.Timeout)
	if err != nil {
		return Enrolment{}, err
	}
	log := orDiscard(cfg.Logger)
	editors := []client.RequestEditorFn{func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}}
	if cfg.Prover != nil {
		editors = append(editors, cfg.Prover.editor())
	}
	// enrol sends one enrol request, with a fresh attestation when asked.
	enrol := func() (*client.EnrolResponse, error) {
		req := client.EnrolRequest{DeviceID: cfg.DeviceID}
		if cfg.Attest != nil {
			att, err := cfg.Attest(ctx, c, editors[0], cfg.DeviceID)
			if err != nil {
				return nil, errAttest{err}
			}
			req.Attestation = att
		}
		return c.EnrolWithResponse(ctx, req, editors...)
	}
	retry := retries{b: cfg.Backoff}
	for {
		resp, err := enrol()
		if err == nil && cfg.Prover != nil && cfg.Prover.observe(resp.HTTPResponse, reasonOf(problemIn(resp.Body))) {
			resp, err = enrol()
		}
		var ae errAttest
		if errors.As(err, &ae) {
			if !attestRetryable(ae.err) {
				return Enrolment{}, ae.err
			}
			err = ae.err
		}
		if err == nil && resp.JSON201 != nil {
			e := resp.JSON201
			if cfg.Prover != nil {
				if e.KeyID != cfg.Prover.KeyID() {
					return Enrolment{}, fmt.Errorf("enrolled as %s, but the server did not bind the device key", e.DeviceID)
				}
				return Enrolment{DeviceID: e.DeviceID, Group: e.Group, KeyID: e.KeyID}, nil
			}
			if e.Token == "" || e.TokenID == "" {
				return Enrolment{}, fmt.Errorf("enrolled as %s, but the server sent no device token", e.DeviceID)
			}
			if err := writeNew(cfg.TokenFile, []byte(e.Token+"\n")); err != nil {
				return Enrolment{}, fmt.Errorf("enrolled as %s, but the device token could not be written (delete the device and enrol again): %w", e.DeviceID, err)
			}
			return Enrolment{DeviceID: e.DeviceID, Group: e.Group, TokenID: e.TokenID}, nil
		}
		switch {
		case ae.err != nil:
			// err is the attestation's failed challenge call, retried below.
		case err == nil:
			err = fetchError(resp.HTTPResponse, problemIn(resp.Body))
		default:
			// The URL is in the error, the token never is.
			err = fmt.Errorf("enrol: %w", err)
		}
		if Permanent(err) {
			return Enrolment{}, err
		}
		if ctx.Err() != nil {
			return Enrolment{}, fmt.Errorf("enrol: %w (last error: %w)", context.Cause(ctx), err)
		}
		d := retry.next(err)
		log.Warn("cannot enrol", "error", err, "retry_in", d.Round(time.Millisecond).String())
		if serr := sleep(ctx, d); serr != nil {
			return Enrolment{}, fmt.Errorf("enrol: %w (last error: %w)", serr, err)
		}
	}
}

// attestRetryable reports whether an attestation failed in its challenge
// call in a way that may clear (no answer, 408, 429 or 5xx), so that the
// enrolment is tried again after a back-off like any other call; a refusal
// or a failure of the TPM itself ends it. The attestor marks its call's
// failures with an HTTPStatus method (tpmkey.CallError), which keeps the
// agent free of the TPM code when it is built without it.
func attestRetryable(err error) bool {
	var call interface{ HTTPStatus() int }
	if !errors.As(err, &call) {
		return false
	}
	switch st := call.HTTPStatus(); {
	case st == 0:
		return !certificateError(err)
	default:
		return st == http.StatusRequestTimeout || st == http.StatusTooManyRequests || st >= 500
	}
}

// errAttest carries an attestation failure out of the enrol loop.
type errAttest struct{ err error }

func (e errAttest) Error() string { return e.err.Error() }

// problemIn decodes an RFC 9457 body, nil when it is none.
func problemIn(body []byte) *client.Problem {
	var p client.Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Status == 0 {
		return nil
	}
	return &p
}

// writeNew writes data to a new file path, mode 0600, all or nothing: a
// temporary file in the same directory, synced, then linked into place,
// which fails rather than replace a file created meanwhile.
func writeNew(path string, data []byte) error {
	tmp, err := syncedTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
