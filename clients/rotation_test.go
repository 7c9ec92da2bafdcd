package clients_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// TestClientsRotateTokens: each client, given a device token with a short
// lifetime, exchanges it for a new one at two thirds of its life and
// writes the new one to its token file atomically (mode 0600, nothing left
// beside it); the old token is refused after the server's overlap, the new
// one works, and the client keeps publishing.
func TestClientsRotateTokens(t *testing.T) {
	const lifetime, overlap = 6 * time.Second, 2 * time.Second
	eachRuntime(t, func(ctx context.Context, t *testing.T, rt runtime) {
		srv := startServer(t, serverOptions{minTokenLifetime: time.Second, rotationOverlap: overlap})
		r := srv.register(t, devices[0], nil)
		var minted struct{ ID, Token string }
		srv.call(http.MethodPost, "/v1/devices/"+r.id+"/tokens", map[string]any{"ttlSeconds": int(lifetime / time.Second), "name": "rotating"}, &minted)
		if !strings.HasPrefix(minted.Token, "csd_3.") {
			t.Fatalf("minted %.8q…, want a token with a lifetime", minted.Token)
		}
		// The client's token file in a directory of its own.
		dir := t.TempDir()
		r.tokenFile = filepath.Join(dir, "token")
		if err := os.WriteFile(r.tokenFile, []byte(minted.Token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := minted.Token
		r.token = old
		mintedAt := time.Now()
		p := startFor(t, rt.command(t, settingsFor(srv, r, 0)), srv, r)
		var next string
		testutil.WaitFor(ctx, t, "the token file to hold a new token", func() bool {
			b, err := os.ReadFile(r.tokenFile)
			next = strings.TrimSpace(string(b))
			return err == nil && next != old && next != ""
		})
		if d := time.Since(mintedAt); d > lifetime {
			t.Errorf("rotated %v after the mint, after the token's end (%v)", d.Round(time.Millisecond), lifetime)
		}
		if !strings.HasPrefix(next, "csd_3.") {
			t.Fatalf("the token file holds %.8q…", next)
		}
		fi, err := os.Stat(r.tokenFile)
		if err != nil || !rt.isMicroPython() && fi.Mode().Perm() != 0o600 { // MicroPython has no file modes
			t.Errorf("token file mode %v, %v; want 0600", fi.Mode(), err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("%d files in the token directory after the rotation, want 1", len(ents))
		}
		secrets := func() []string { return append(secretsOf(srv, r), next) }
		credentials := func(tok string) int {
			t.Helper()
			req, _ := http.NewRequest(http.MethodPost, srv.url+"/v1/devices/"+r.id+"/credentials", bytes.NewReader([]byte("{}")))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.httpClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if st := credentials(next); st != http.StatusOK {
			t.Errorf("the new token: %d", st)
		}
		// Refused by half a second past the overlap.
		if err := testutil.Poll(ctx, overlap+500*time.Millisecond, func() error {
			if st := credentials(old); st != http.StatusUnauthorized {
				return fmt.Errorf("the old token after the overlap: %d, want 401", st)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		if st := credentials(next); st != http.StatusOK {
			t.Errorf("the new token after the overlap: %d", st)
		}
		// The listing shows the rotation, the name kept.
		var l struct {
			Tokens []struct{ ID, Name, State, ReplacedBy string }
		}
		srv.call(http.MethodGet, "/v1/devices/"+r.id+"/tokens", nil, &l)
		b, _ := json.Marshal(l)
		var rotatedOld bool
		for _, tk := range l.Tokens {
			if tk.ID == minted.ID {
				rotatedOld = tk.State == "rotated" && tk.ReplacedBy != "" && tk.Name == "rotating"
			}
		}
		if !rotatedOld {
			t.Errorf("tokens listed %s", b)
		}
		healthy(t, p, srv, r)
		noSecrets(t, p, secrets()...)
	})
}
