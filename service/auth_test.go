package service

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
)

func TestParseBearer(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"Bearerabc", "", false},
		{"Bearer a b", "", false},
		{"Bearer a\x00", "", false},
		{"Bearer é", "", false},
		{"Bearer " + strings.Repeat("a", 513), "", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, ok := ParseBearer(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseBearer(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// FuzzParseBearer checks that an accepted token is printable ASCII without
// spaces, bounded, and part of the header.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer csp_abc", "bearer  x", "Bearer", "Basic a", "Bearer \t", "Bearer a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := ParseBearer(h)
		if !ok {
			if tok != "" {
				t.Fatalf("%q: token %q with ok=false", h, tok)
			}
			return
		}
		if tok == "" || len(tok) > 512 || !strings.HasSuffix(h, tok) {
			t.Fatalf("%q: bad token %q", h, tok)
		}
		for _, c := range []byte(tok) {
			if c <= ' ' || c > '~' {
				t.Fatalf("%q: token has byte %#x", h, c)
			}
		}
	})
}

func TestNewToken(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for _, role := range []string{secrets.RoleProvisioner, secrets.RoleDevice} {
		for i := 0; i < 50; i++ {
			m, err := NewToken(role, "d1", now)
			if err != nil {
				t.Fatal(err)
			}
			prefix := map[string]string{secrets.RoleProvisioner: PrefixProvisioner, secrets.RoleDevice: PrefixDevice}[role]
			if !strings.HasPrefix(m.Text, prefix) || len(m.Text) != len(prefix)+64 {
				t.Errorf("token %q: want %s + 64 hex digits (256 bits)", m.Text, prefix)
			}
			if m.Record.Hash != Hash(m.Text) || !secrets.ValidHash(m.Record.Hash) || !secrets.ValidID(m.Record.ID) {
				t.Errorf("record %+v", m.Record)
			}
			if strings.Contains(m.Record.ID, m.Text[4:12]) {
				t.Errorf("the ID reveals the token")
			}
			if seen[m.Text] || seen[m.Record.ID] {
				t.Fatal("repeated token or ID")
			}
			seen[m.Text], seen[m.Record.ID] = true, true
		}
	}
	if _, err := NewToken("admin", "", now); err == nil {
		t.Error("minted an admin token")
	}
}

// tokens is a TokenStore with a fixed set of records.
type tokens struct {
	secrets.TokenStore
	byHash map[string]secrets.Token
	err    error
}

func (s tokens) TokenByHash(_ context.Context, h string) (secrets.Token, error) {
	if s.err != nil {
		return secrets.Token{}, s.err
	}
	t, ok := s.byHash[h]
	if !ok {
		return secrets.Token{}, secrets.ErrNotFound
	}
	return t, nil
}

func TestAuthenticate(t *testing.T) {
	admin := "an-admin-token-of-some-length"
	live, _ := NewToken(secrets.RoleDevice, "d1", time.Now())
	dead, _ := NewToken(secrets.RoleProvisioner, "", time.Now())
	at := time.Now()
	dead.Record.RevokedAt = &at
	st := tokens{byHash: map[string]secrets.Token{live.Record.Hash: live.Record, dead.Record.Hash: dead.Record}}
	a, err := NewAuthenticator(admin, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if p, err := a.Authenticate(ctx, "Bearer "+admin); err != nil || p.Role != RoleAdmin {
		t.Errorf("admin: %+v %v", p, err)
	}
	if p, err := a.Authenticate(ctx, "Bearer "+live.Text); err != nil || p.Role != secrets.RoleDevice || p.DeviceID != "d1" || p.TokenID != live.Record.ID {
		t.Errorf("device: %+v %v", p, err)
	}
	for _, h := range []string{"", "Bearer " + dead.Text, "Bearer csp_unknown", "Bearer nope-no-prefix", "Basic " + admin, "Bearer " + admin + "x"} {
		_, err := a.Authenticate(ctx, h)
		var se *Error
		if !errors.As(err, &se) || se.Code != CodeUnauthorized {
			t.Errorf("%q: %v, want CodeUnauthorized", h, err)
		}
	}
	down, _ := NewAuthenticator(admin, tokens{err: secrets.ErrUnavailable})
	if _, err := down.Authenticate(ctx, "Bearer "+live.Text); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("store down: %v", err)
	}
	if _, err := NewAuthenticator("short", st); err == nil {
		t.Error("accepted a short admin token")
	}
	if _, err := NewAuthenticator("a token with spaces in it", st); err == nil {
		t.Error("accepted an admin token with spaces")
	}
}

// TestTokenKindsDocumented: docs/api.md names the prefix of every kind of
// token in TokenKinds, in the sentence that lists them, and every kind's
// minted text starts with its prefix.
func TestTokenKindsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sentence, ok := strings.Cut(string(doc), "Tokens carry a prefix (")
	sentence, _, _ = strings.Cut(sentence, ")")
	if !ok {
		t.Fatal(`docs/api.md has no "Tokens carry a prefix (" sentence`)
	}
	seen := map[string]bool{}
	for _, k := range TokenKinds {
		if seen[k.Prefix] || !strings.HasSuffix(k.Prefix, "_") {
			t.Errorf("prefix %q repeated or not ending in _", k.Prefix)
		}
		seen[k.Prefix] = true
		if !strings.Contains(sentence, "`"+k.Prefix+"`") {
			t.Errorf("docs/api.md does not list the %s prefix %q: %q", k.Role, k.Prefix, sentence)
		}
	}
	admin, err := NewAdminToken()
	if err != nil || !strings.HasPrefix(admin, PrefixAdmin) {
		t.Errorf("admin token %.4q…, %v", admin, err)
	}
}

// TestSetAdminTokens: every admin token of the set is valid; after a swap
// the removed one is refused and the new one accepted; an unfit set (none,
// one too short) changes nothing and its error holds no token text.
func TestSetAdminTokens(t *testing.T) {
	const a, b, c = "first-admin-token-0001", "second-admin-token-0002", "third-admin-token-0003"
	st := tokens{byHash: map[string]secrets.Token{}}
	auth, err := NewAuthenticator(a, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(step string, valid ...string) {
		t.Helper()
		for _, tok := range []string{a, b, c} {
			p, err := auth.Authenticate(ctx, "Bearer "+tok)
			var se *Error
			switch {
			case slices.Contains(valid, tok) && (err != nil || p.Role != RoleAdmin || p.TokenID != AdminTokenID):
				t.Errorf("%s: %.6s… refused: %+v %v", step, tok, p, err)
			case !slices.Contains(valid, tok) && (!errors.As(err, &se) || se.Code != CodeUnauthorized):
				t.Errorf("%s: %.6s… not refused: %+v %v", step, tok, p, err)
			}
		}
	}
	check("one", a)
	for _, set := range []struct {
		name   string
		tokens []string
		valid  []string
	}{
		{"two", []string{a, b}, []string{a, b}},
		{"swap", []string{b, c}, []string{b, c}},
		{"none", nil, []string{b, c}},
		{"one too short", []string{a, "short-token"}, []string{b, c}},
		{"one with a space", []string{"has a space in it!"}, []string{b, c}},
		{"back to one", []string{c}, []string{c}},
	} {
		err := auth.SetAdminTokens(set.tokens)
		if fit := len(set.tokens) > 0 && slices.Equal(set.tokens, set.valid); fit != (err == nil) {
			t.Errorf("%s: %v", set.name, err)
		}
		if err != nil && strings.Contains(err.Error(), a) {
			t.Errorf("%s: error holds a token: %v", set.name, err)
		}
		check(set.name, set.valid...)
	}
}
