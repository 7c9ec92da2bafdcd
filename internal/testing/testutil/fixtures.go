package testutil

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// RandomHex returns n random bytes in hex, for admin tokens and the like.
func RandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// WriteFile writes b, mode 0600, to a file name in a new temporary directory
// of t and returns its path.
func WriteFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Admin makes admin requests to a credsign server under test.
type Admin struct {
	T      testing.TB
	URL    string       // base URL of the server
	Token  string       // the admin bearer token
	Client *http.Client // nil: http.DefaultClient
}

// Call sends body (when not nil) as JSON, fails the test unless the answer
// is 2xx, and decodes a JSON answer into out (when not nil).
func (a Admin) Call(method, path string, body, out any) {
	a.T.Helper()
	status, _, b := Do(a.T, a.Client, method, a.URL+path, a.Token, body)
	if status >= 300 {
		a.T.Fatalf("%s %s: %d: %s", method, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.T.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
}

// Do sends one request to url with token as its bearer (none when empty)
// and body (when not nil) as JSON, through client (nil:
// http.DefaultClient), and returns the answer read in full; it fails the
// test only when no full answer comes.
func Do(t testing.TB, client *http.Client, method, url, token string, body any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	b := ReadAnswer(t, method+" "+url, resp, err)
	return resp.StatusCode, resp.Header, b
}

// ReadAnswer reads and closes the body of the answer to request what (res
// and err as an http.Client's Do returns them), and fails t when no answer
// came or it was cut.
func ReadAnswer(t testing.TB, what string, res *http.Response, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s: read answer: %v", what, err)
	}
	return b
}

// Register creates (or replaces) device id and mints a device token for it,
// and returns the token's id and the token.
func (a Admin) Register(id, cloud string, params map[string]any, secret string) (tokenID, token string) {
	a.T.Helper()
	a.Call(http.MethodPut, "/v1/devices/"+id, map[string]any{"cloud": cloud, "params": params, "secret": secret}, nil)
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	a.Call(http.MethodPost, "/v1/devices/"+id+"/tokens", nil, &tok)
	if tok.Token == "" || tok.ID == "" {
		a.T.Fatal("no device token in the answer")
	}
	return tok.ID, tok.Token
}
