package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/secrets"
)

// testDeviceKeys: a device's public keys and its requireKey flag (and a
// group's) are stored with the record, read back byte for byte, replaced
// and removed by a write like any other field, listed with the device, and
// a record with more than secrets.MaxDeviceKeys keys is refused unchanged.
func testDeviceKeys(t *testing.T, s secrets.Store) {
	c := ctx(t)
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	key := func(n byte) secrets.DeviceKey {
		return secrets.DeviceKey{ID: "kid-" + string('a'+n),
			JWK:  json.RawMessage(`{"crv":"P-256","kty":"EC","x":"` + string('A'+n) + `","y":"y"}`),
			Name: "key " + string('a'+n), Attestation: "none", CreatedAt: at}
	}
	d := device("keyed", "aliyun")
	d.Keys = []secrets.DeviceKey{key(0), key(1)}
	d.RequireKey = true
	stored := mustPut(t, s, d, 0)
	got, err := s.GetDevice(c, "keyed")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []secrets.Device{stored, got} {
		if !r.RequireKey || len(r.Keys) != 2 {
			t.Fatalf("keys not stored: %+v %v", r.Keys, r.RequireKey)
		}
		for i, k := range r.Keys {
			w := d.Keys[i]
			var a, b any
			_ = json.Unmarshal(k.JWK, &a)
			_ = json.Unmarshal(w.JWK, &b)
			if k.ID != w.ID || k.Name != w.Name || k.Attestation != w.Attestation || !k.CreatedAt.Equal(w.CreatedAt) ||
				!bytes.Equal(testutil.MustJSON(t, a), testutil.MustJSON(t, b)) {
				t.Fatalf("key %d: got %+v, want %+v", i, k, w)
			}
		}
	}
	page, err := s.ListDevices(c, secrets.ListOptions{})
	if err != nil || len(page.Devices) != 1 || len(page.Devices[0].Keys) != 2 {
		t.Fatalf("listing: %v %+v", err, page.Devices)
	}
	// Too many keys: refused, nothing changed.
	over := got
	for i := range secrets.MaxDeviceKeys {
		over.Keys = append(over.Keys, key(byte(2+i)))
	}
	if _, err := s.PutDevice(c, over, got.Version); !errors.Is(err, secrets.ErrInvalid) {
		t.Fatalf("%d keys: %v, want ErrInvalid", len(over.Keys), err)
	}
	if again, _ := s.GetDevice(c, "keyed"); again.Version != got.Version || len(again.Keys) != 2 {
		t.Fatalf("a refused write changed the device: v%d, %d keys", again.Version, len(again.Keys))
	}
	// Removing a key is a write of the record without it.
	got.Keys = got.Keys[1:]
	got.RequireKey = false
	next, err := s.PutDevice(c, got, got.Version)
	if err != nil {
		t.Fatal(err)
	}
	if next.RequireKey || len(next.Keys) != 1 || next.Keys[0].ID != "kid-b" {
		t.Fatalf("after removing a key: %+v", next.Keys)
	}
	got.Keys = nil
	if _, err := s.PutDevice(c, got, next.Version); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.GetDevice(c, "keyed"); last.Keys != nil {
		t.Fatalf("keys left: %+v", last.Keys)
	}
	// A group's requireKey.
	g := secrets.Group{ID: "keyed-group", Cloud: "aliyun", Secret: NewSecret(), Params: map[string]any{"productKey": "pk"}, RequireKey: true}
	if _, err := s.PutGroup(c, g, 0); err != nil {
		t.Fatal(err)
	}
	if rg, err := s.GetGroup(c, g.ID); err != nil || !rg.RequireKey {
		t.Fatalf("group requireKey: %v %v", rg.RequireKey, err)
	}
}
