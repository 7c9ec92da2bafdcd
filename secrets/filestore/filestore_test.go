package filestore

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/storetest"
)

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) secrets.Store {
		return open(t, Config{Dir: t.TempDir()})
	})
}

func TestConformanceWithKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	storetest.Run(t, func(t *testing.T) secrets.Store {
		return open(t, Config{Dir: t.TempDir(), Key: key})
	})
}

func TestKeyFileAndNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	d := secrets.Device{ID: "lamp-7", Cloud: "aliyun", Params: map[string]any{"deviceName": "lamp-7"}, Secret: storetest.NewSecret()}
	if _, err := s.PutDevice(context.Background(), d, 0); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %o, want 600", perm)
	}
	keyText, err := os.ReadFile(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKey(keyText)
	if err != nil {
		t.Fatalf("key file does not parse: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, DataFileName))
	if err != nil {
		t.Fatal(err)
	}
	for name, needle := range map[string][]byte{
		"secret":         []byte(d.Secret),
		"key":            key,
		"key as base64":  bytes.TrimSpace(keyText),
		"device name":    []byte("lamp-7"),
		"secret (UTF16)": []byte(strings.Join(strings.Split(d.Secret, ""), "\x00")),
	} {
		if bytes.Contains(data, needle) {
			t.Errorf("data file contains the %s in plain text", name)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != DataFileName && e.Name() != KeyFileName && e.Name() != LockFileName {
			t.Errorf("unexpected file %s in the data directory", e.Name())
		}
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	d := secrets.Device{ID: "lamp-7", Cloud: "aliyun", Params: map[string]any{"port": 8883}, Secret: storetest.NewSecret()}
	if _, err := s.PutDevice(ctx, d, 0); err != nil {
		t.Fatal(err)
	}
	want, err := s.PutDevice(ctx, d, 1)
	if err != nil {
		t.Fatal(err)
	}
	tok := secrets.Token{ID: "t1", Hash: storetest.Hash("t1"), Role: secrets.RoleProvisioner}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDevice(ctx, "lamp-7"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("GetDevice on a closed store: %v, want ErrUnavailable", err)
	}

	s2 := open(t, Config{Dir: dir})
	got, err := s2.GetDevice(ctx, "lamp-7")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Secret != d.Secret || got.Params["port"] != float64(8883) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("after reopen got version %d params %v created %v updated %v; want %d %v %v",
			got.Version, got.Params, got.CreatedAt, got.UpdatedAt, want.Version, want.CreatedAt, want.UpdatedAt)
	}
	if _, err := s2.TokenByHash(ctx, tok.Hash); err != nil {
		t.Fatalf("token after reopen: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	written := func(t *testing.T) string {
		dir := t.TempDir()
		s, err := Open(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutDevice(ctx, secrets.Device{ID: "a", Cloud: "aliyun", Secret: "x"}, 0); err != nil {
			t.Fatal(err)
		}
		s.Close()
		return dir
	}
	data := func(dir string) string { return filepath.Join(dir, DataFileName) }
	tests := []struct {
		name    string
		setup   func(t *testing.T) Config
		wantErr error  // checked with errors.Is when set
		wantMsg string // substring of the error
	}{
		{"no dir", func(t *testing.T) Config { return Config{} }, nil, "no data directory"},
		{"short key", func(t *testing.T) Config { return Config{Dir: t.TempDir(), Key: []byte("short")} }, nil, "key is 5 bytes, want 32"},
		{"key file is the data file", func(t *testing.T) Config {
			dir := t.TempDir()
			return Config{Dir: dir, KeyFile: data(dir)}
		}, nil, "key file may not be the data file"},
		{"wrong key", func(t *testing.T) Config {
			return Config{Dir: written(t), Key: bytes.Repeat([]byte{1}, KeySize)}
		}, ErrWrongKey, "wrong key or damaged file"},
		{"other key file", func(t *testing.T) Config {
			dir := written(t)
			other := filepath.Join(t.TempDir(), "other.key")
			os.WriteFile(other, []byte(FormatKey(bytes.Repeat([]byte{2}, KeySize))), 0o600)
			return Config{Dir: dir, KeyFile: other}
		}, ErrWrongKey, "wrong key or damaged file"},
		{"missing key file", func(t *testing.T) Config {
			dir := written(t)
			os.Remove(filepath.Join(dir, KeyFileName))
			return Config{Dir: dir}
		}, nil, "is missing but store.enc exists"},
		{"bad key file", func(t *testing.T) Config {
			dir := written(t)
			os.WriteFile(filepath.Join(dir, KeyFileName), []byte("not base64!"), 0o600)
			return Config{Dir: dir}
		}, nil, "not valid base64"},
		{"flipped ciphertext bit", func(t *testing.T) Config {
			dir := written(t)
			b, _ := os.ReadFile(data(dir))
			b[len(b)-20] ^= 1
			os.WriteFile(data(dir), b, 0o600)
			return Config{Dir: dir}
		}, ErrDamaged, "damaged file: authentication failed"},
		{"flipped nonce bit", func(t *testing.T) Config {
			dir := written(t)
			b, _ := os.ReadFile(data(dir))
			b[headerSize-1] ^= 1
			os.WriteFile(data(dir), b, 0o600)
			return Config{Dir: dir}
		}, ErrDamaged, "authentication failed"},
		{"truncated", func(t *testing.T) Config {
			dir := written(t)
			b, _ := os.ReadFile(data(dir))
			os.WriteFile(data(dir), b[:len(b)/2], 0o600)
			return Config{Dir: dir}
		}, ErrDamaged, "damaged file"},
		{"empty", func(t *testing.T) Config {
			dir := written(t)
			os.WriteFile(data(dir), nil, 0o600)
			return Config{Dir: dir}
		}, ErrDamaged, "not a credsign store file"},
		{"newer format", func(t *testing.T) Config {
			dir := written(t)
			b, _ := os.ReadFile(data(dir))
			b[9] = 2
			os.WriteFile(data(dir), b, 0o600)
			return Config{Dir: dir}
		}, nil, "unsupported format version 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.setup(t))
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v is not %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
		})
	}
}

func TestLockedDir(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	if s2, err := Open(Config{Dir: dir}); err == nil {
		s2.Close()
		t.Fatal("second Open of the same directory succeeded")
	} else if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Open: %v", err)
	}
	s.Close()
	open(t, Config{Dir: dir}) // free again
}

// TestFailedWriteChangesNothing makes the rename of the new data file fail
// and checks the store, in memory and on disk, is as before.
func TestFailedWriteChangesNothing(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, Config{Dir: dir})
	old := secrets.Device{ID: "lamp-7", Cloud: "aliyun", Secret: storetest.NewSecret()}
	if _, err := s.PutDevice(ctx, old, 0); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, DataFileName))
	if err != nil {
		t.Fatal(err)
	}

	renameFile = func(string, string) error { return errors.New("disk on fire") }
	t.Cleanup(func() { renameFile = os.Rename })
	newer := secrets.Device{ID: "lamp-7", Cloud: "tencent", Secret: storetest.NewSecret()}
	writes := map[string]func() error{
		"PutDevice update": func() error { _, err := s.PutDevice(ctx, newer, 1); return err },
		"PutDevice create": func() error {
			_, err := s.PutDevice(ctx, secrets.Device{ID: "new", Secret: newer.Secret}, 0)
			return err
		},
		"DeleteDevice": func() error { return s.DeleteDevice(ctx, "lamp-7") },
		"PutToken":     func() error { return s.PutToken(ctx, secrets.Token{ID: "t", Hash: storetest.Hash("t")}) },
	}
	for name, write := range writes {
		err := write()
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("%s: error = %v, want the rename failure", name, err)
		}
		if strings.Contains(err.Error(), newer.Secret) {
			t.Fatalf("%s: error contains the secret", name)
		}
	}
	renameFile = os.Rename

	got, err := s.GetDevice(ctx, "lamp-7")
	if err != nil || got.Version != 1 || got.Secret != old.Secret || got.Cloud != "aliyun" {
		t.Fatalf("in memory after failed writes: version %d cloud %q, %v", got.Version, got.Cloud, err)
	}
	if _, err := s.TokenByHash(ctx, storetest.Hash("t")); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("token of a failed write is visible: %v", err)
	}
	after, err := os.ReadFile(filepath.Join(dir, DataFileName))
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("data file changed by failed writes (%v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, tempPattern)); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

func TestUnencodableParams(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	d := secrets.Device{ID: "nan", Cloud: "aliyun", Params: map[string]any{"port": math.NaN()}, Secret: storetest.NewSecret()}
	_, err := s.PutDevice(context.Background(), d, 0)
	if !errors.Is(err, secrets.ErrInvalid) || strings.Contains(err.Error(), d.Secret) {
		t.Fatalf("PutDevice with NaN param: %v", err)
	}
	if _, err := s.GetDevice(context.Background(), "nan"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("rejected device stored: %v", err)
	}
}

func TestStaleTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutDevice(context.Background(), secrets.Device{ID: "a", Secret: "x"}, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// What a crash between writing the temporary file and renaming it leaves.
	stale := filepath.Join(dir, DataFileName+".tmp-123")
	if err := os.WriteFile(stale, []byte("half a reco"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, Config{Dir: dir})
	if _, err := s2.GetDevice(context.Background(), "a"); err != nil {
		t.Fatalf("GetDevice after crash: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temporary file still there: %v", err)
	}
}

func TestKeyFromEnv(t *testing.T) {
	key := bytes.Repeat([]byte{0xAB}, KeySize)
	tests := []struct {
		name    string
		env     string
		want    []byte
		wantErr string
	}{
		{"unset", "", nil, ""},
		{"valid", FormatKey(key), key, ""},
		{"valid with newline", FormatKey(key) + "\n", key, ""},
		{"not base64", "%%%not-base64%%%", nil, "not valid base64"},
		{"too short", FormatKey(key[:16]), nil, "key is 16 bytes, want 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvKey, tc.env)
			got, err := KeyFromEnv()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), EnvKey) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), tc.env) {
					t.Fatalf("error quotes the key text: %v", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("KeyFromEnv = %x, %v; want %x", got, err, tc.want)
			}
		})
	}
}

func TestEncodeUsesFreshNonce(t *testing.T) {
	key := bytes.Repeat([]byte{3}, KeySize)
	a, err := encode(key, newState())
	if err != nil {
		t.Fatal(err)
	}
	b, err := encode(key, newState())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[headerSize-nonceSize:headerSize], b[headerSize-nonceSize:headerSize]) {
		t.Fatal("two writes used the same nonce")
	}
}

func FuzzDecode(f *testing.F) {
	key := bytes.Repeat([]byte{5}, KeySize)
	st := newState()
	st.Devices["a"] = secrets.Device{ID: "a", Cloud: "aliyun", Secret: "x", Version: 1}
	st.Tokens["t"] = secrets.Token{ID: "t", Hash: storetest.Hash("t")}
	valid, err := encode(key, st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:headerSize])
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decode(key, data)
		if err != nil {
			return
		}
		if err := got.check(); err != nil {
			t.Fatalf("decode accepted a state that fails check: %v", err)
		}
		again, err := encode(key, got)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decode(key, again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte(FormatKey(make([]byte, KeySize))))
	f.Add([]byte(" \n"))
	f.Add([]byte("AAAA"))
	f.Fuzz(func(t *testing.T, text []byte) {
		key, err := ParseKey(text)
		if err != nil {
			if len(text) > 8 && strings.Contains(err.Error(), string(text)) {
				t.Fatalf("error quotes the key text: %v", err)
			}
			return
		}
		if len(key) != KeySize {
			t.Fatalf("ParseKey returned %d bytes", len(key))
		}
		if again, err := ParseKey([]byte(FormatKey(key))); err != nil || !bytes.Equal(again, key) {
			t.Fatalf("round trip: %x, %v", again, err)
		}
	})
}
