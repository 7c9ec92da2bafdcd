package filestore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/storetest"
)

// legacyDir writes a data directory as the one-file format left it: the key
// file and store.enc with two devices and two tokens, one revoked.
func legacyDir(t *testing.T) (dir string, st *legacyState, data []byte) {
	t.Helper()
	dir = t.TempDir()
	key := bytes.Repeat([]byte{4}, KeySize)
	created := time.Date(2026, 11, 1, 8, 0, 0, 123456789, time.UTC)
	revoked := created.Add(time.Hour)
	st = &legacyState{
		Devices: map[string]secrets.Device{
			"lamp-7": {ID: "lamp-7", Cloud: "aliyun", Params: map[string]any{"productKey": "pk", "port": float64(8883)},
				Secret: storetest.NewSecret(), Labels: map[string]string{"site": "sz"}, Version: 3, CreatedAt: created, UpdatedAt: created.Add(time.Minute)},
			"valve-2": {ID: "valve-2", Cloud: "azure", Secret: storetest.NewSecret(), Version: 1, CreatedAt: created, UpdatedAt: created},
		},
		Tokens: map[string]secrets.Token{
			"tok-a": {ID: "tok-a", Hash: storetest.Hash("a"), Role: secrets.RoleDevice, DeviceID: "lamp-7", CreatedAt: created},
			"tok-b": {ID: "tok-b", Hash: storetest.Hash("b"), Role: secrets.RoleProvisioner, CreatedAt: created, RevokedAt: &revoked},
		},
	}
	data = encodeLegacy(t, key, st)
	if err := os.WriteFile(filepath.Join(dir, LegacyFileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFileName), []byte(FormatKey(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, st, data
}

// checkMigrated checks that s holds exactly st's records.
func checkMigrated(t *testing.T, s *Store, st *legacyState) {
	t.Helper()
	ctx := context.Background()
	page, err := s.ListDevices(ctx, secrets.ListOptions{})
	if err != nil || len(page.Devices) != len(st.Devices) {
		t.Fatalf("ListDevices after migration: %d devices, %v; want %d", len(page.Devices), err, len(st.Devices))
	}
	for _, want := range st.Devices {
		got, err := s.GetDevice(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetDevice(%s): %v", want.ID, err)
		}
		if got.Secret != want.Secret || got.Cloud != want.Cloud || got.Version != want.Version ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) ||
			got.Params["port"] != want.Params["port"] || got.Labels["site"] != want.Labels["site"] {
			t.Fatalf("device %s not migrated as it was", want.ID)
		}
	}
	for _, want := range st.Tokens {
		got, err := s.TokenByHash(ctx, want.Hash)
		if err != nil || got.ID != want.ID || got.Role != want.Role || got.DeviceID != want.DeviceID ||
			!got.CreatedAt.Equal(want.CreatedAt) || (got.RevokedAt == nil) != (want.RevokedAt == nil) {
			t.Fatalf("token %s: %+v, %v", want.ID, got, err)
		}
	}
	// The migrated device's version goes on from where it was.
	d := st.Devices["lamp-7"]
	if got, err := s.PutDevice(ctx, d, d.Version); err != nil || got.Version != d.Version+1 {
		t.Fatalf("PutDevice after migration: version %d, %v", got.Version, err)
	}
}

func TestMigrateLegacyFile(t *testing.T) {
	dir, st, data := legacyDir(t)
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open of a legacy directory: %v", err)
	}
	checkMigrated(t, s, st)
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, LegacyFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still in place: %v", LegacyFileName, err)
	}
	kept, err := os.ReadFile(filepath.Join(dir, LegacyFileName+MigratedSuffix))
	if err != nil || !bytes.Equal(kept, data) {
		t.Fatalf("old file not kept aside unchanged: %v", err)
	}

	// A start interrupted after the copy, before the rename, finishes it.
	if err := os.WriteFile(filepath.Join(dir, LegacyFileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{Dir: dir})
	if got, err := s.GetDevice(context.Background(), "lamp-7"); err != nil || got.Version != st.Devices["lamp-7"].Version+1 {
		t.Fatalf("re-opened store lost the post-migration write (version %d, %v)", got.Version, err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, LegacyFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s not renamed on the second start: %v", LegacyFileName, err)
	}
}

func TestMigrateRefusals(t *testing.T) {
	t.Run("wrong key creates nothing", func(t *testing.T) {
		dir, _, _ := legacyDir(t)
		_, err := Open(Config{Dir: dir, Key: bytes.Repeat([]byte{1}, KeySize)})
		if !errors.Is(err, ErrWrongKey) {
			t.Fatalf("Open with a wrong key: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, DataFileName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a failed migration left %s: %v", DataFileName, err)
		}
	})
	t.Run("damaged legacy file", func(t *testing.T) {
		dir, _, data := legacyDir(t)
		data[len(data)-3] ^= 1
		os.WriteFile(filepath.Join(dir, LegacyFileName), data, 0o600)
		if _, err := Open(Config{Dir: dir}); !errors.Is(err, ErrDamaged) {
			t.Fatalf("Open of a damaged legacy file: %v", err)
		}
	})
	t.Run("another legacy file beside a migrated store", func(t *testing.T) {
		dir, st, _ := legacyDir(t)
		s, err := Open(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		key, _ := ParseKey(must(os.ReadFile(filepath.Join(dir, KeyFileName))))
		os.WriteFile(filepath.Join(dir, LegacyFileName), encodeLegacy(t, key, st), 0o600) // new nonce: other bytes
		_, err = Open(Config{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "move one of them aside") {
			t.Fatalf("Open with an unmigrated legacy file beside the store: %v", err)
		}
	})
	t.Run("older credsign still running", func(t *testing.T) {
		dir, _, _ := legacyDir(t)
		lock, err := lockDir(filepath.Join(dir, LockFileName))
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close()
		if _, err := Open(Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
			t.Fatalf("Open while the legacy lock is held: %v", err)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
