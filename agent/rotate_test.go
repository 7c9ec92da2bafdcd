package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/servertest"
	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/service"
)

func TestTokenLife(t *testing.T) {
	m, e := time.Unix(0, 1000), time.Unix(0, 4000)
	tests := []struct {
		tok        string
		wantM, wan time.Time
	}{
		{"csd_3.id.ZGV2.1000.4000.bWFj", m, e},
		{"csd_2.id.ZGV2.1000.bWFj", time.Time{}, time.Time{}},
		{"csd_3.id.ZGV2.4000.1000.bWFj", time.Time{}, time.Time{}}, // expires before minted
		{"csd_3.id.ZGV2.x.4000.bWFj", time.Time{}, time.Time{}},
		{"csp_abc", time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		gm, ge := tokenLife(tc.tok)
		if !gm.Equal(tc.wantM) || !ge.Equal(tc.wan) {
			t.Errorf("tokenLife(%q) = %v, %v", tc.tok, gm, ge)
		}
	}
	if at := RotateAt(m, e); !at.Equal(time.Unix(0, 3000)) {
		t.Errorf("RotateAt = %v, want two thirds of the way", at)
	}
}

func TestReplaceFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceFile(p, []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if err != nil || string(b) != "new\n" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after ReplaceFile: %q, mode %v, %v", b, fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("ReplaceFile left %d files", len(ents))
	}
	if err := ReplaceFile(filepath.Join(dir, "missing-dir", "token"), []byte("x")); err == nil {
		t.Error("ReplaceFile into a missing directory succeeded")
	}
}

// TestRotateAgainstServer: the agent rotates a short-lived device token of
// a real credsign server at two thirds of its life and writes the new one
// atomically; the old token is refused after the server's overlap, the
// new one works, and the next token is rotated in turn.
func TestRotateAgainstServer(t *testing.T) {
	const admin = "csa_rotate-test-admin-token-0123456789"
	srv, _ := servertest.Start(t, service.Config{AdminToken: admin, MinTokenLifetime: time.Second, RotationOverlap: time.Second})
	call := func(method, path, tok string, body any) (int, []byte) {
		t.Helper()
		st, _, b := testutil.Do(t, nil, method, srv.URL+path, tok, body)
		return st, b
	}
	if st, b := call("PUT", "/v1/devices/lamp-1", admin, map[string]any{"cloud": "aliyun",
		"params": map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": "lamp-1"}, "secret": "aliyun-secret-1"}); st != 201 {
		t.Fatalf("put device: %d %s", st, b)
	}
	st, b := call("POST", "/v1/devices/lamp-1/tokens", admin, map[string]any{"ttlSeconds": 3, "name": "lamp-1"})
	if st != 201 {
		t.Fatalf("mint: %d %s", st, b)
	}
	var minted struct{ Token string }
	_ = json.Unmarshal(b, &minted)
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(minted.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := NewHTTPSource(HTTPSourceConfig{Server: srv.URL, DeviceID: "lamp-1", TokenFile: file})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	rotated := make(chan struct{}, 4)
	onEvent := func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case EventTokenRotated:
			rotated <- struct{}{}
		case EventTokenRotateFailed:
			t.Errorf("rotation failed: %v", e.Err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		rotateTokens(ctx, src, Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}, orDiscard(nil), onEvent)
	}()
	defer func() { cancel(); <-done }()
	start := time.Now()
	select {
	case <-rotated:
	case <-ctx.Done():
		t.Fatal("no rotation")
	}
	if d := time.Since(start); d < time.Second || d > 3*time.Second {
		t.Errorf("rotated after %v, want about 2s (two thirds of 3s)", d)
	}
	nb, _ := os.ReadFile(file)
	next := strings.TrimSpace(string(nb))
	if fi, _ := os.Stat(file); next == minted.Token || !strings.HasPrefix(next, "csd_3.") || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file after rotation: %.12q…, mode %v", next, fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("rotation left %d files in the token directory", len(ents))
	}
	if st, b := call("POST", "/v1/devices/lamp-1/credentials", next, nil); st != 200 {
		t.Errorf("new token: %d %s", st, b)
	}
	// Refused by 1.1s after the rotation, the server's overlap being 1s.
	if err := testutil.Poll(ctx, 1100*time.Millisecond, func() error {
		if st, _ := call("POST", "/v1/devices/lamp-1/credentials", minted.Token, nil); st != 401 {
			return fmt.Errorf("old token after the overlap: %d, want 401", st)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// The next token is rotated in its turn.
	select {
	case <-rotated:
	case <-ctx.Done():
		t.Fatal("no second rotation")
	}
	st, b = call("GET", "/v1/devices/lamp-1/tokens", admin, nil)
	if st != 200 || strings.Count(string(b), `"name":"lamp-1"`) != 3 {
		t.Errorf("tokens after two rotations: %d %s", st, b)
	}
	// A 422 is the contract's default problem response (it has no header
	// of its own): the agent still reads its title, detail and fields.
	long, err := NewHTTPSource(HTTPSourceConfig{Server: srv.URL, DeviceID: "lamp-1", TokenFile: file, TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_, err = long.Fetch(ctx)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Status != 422 || fe.Title != "Unprocessable Entity" || fe.Detail != "the request body is invalid" ||
		len(fe.Errors) != 1 || fe.Errors[0].Field != "ttlSeconds" {
		t.Errorf("credentials over the cloud's maximum: %v, want 422 naming ttlSeconds", err)
	}
}
