package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/credsign/credsign/secrets"
)

// testGroups checks the GroupStore: round trip (registration included),
// compare-and-set under CheckVersion, one winner among concurrent creators,
// not found, invalid IDs, delete, pagination, and that no error quotes the
// group secret.
func testGroups(t *testing.T, s secrets.Store) {
	c := ctx(t)
	secret := NewSecret()
	in := secrets.Group{
		ID: "lamps", Cloud: "azure", Secret: secret,
		Params:       map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "{deviceId}", "n": 3},
		Labels:       map[string]string{"site": "sz"},
		Registration: &secrets.Registration{Kind: "azure-dps", Params: map[string]string{"idScope": "0ne00000001"}},
		// TPM attestation required (#23).
		RequireAttestation: "tpm",
	}
	if _, err := s.GetGroup(c, "lamps"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("GetGroup of a missing group: %v, want ErrNotFound", err)
	}
	got, err := s.PutGroup(c, in, 0)
	if err != nil {
		noSecret(t, err, secret)
		t.Fatalf("PutGroup create: %v", err)
	}
	if got.Version != 1 || got.CreatedAt.IsZero() || !got.CreatedAt.Equal(got.UpdatedAt) {
		t.Errorf("created group bookkeeping: version %d, created %v, updated %v", got.Version, got.CreatedAt, got.UpdatedAt)
	}
	want := in
	want.Params = map[string]any{"hubHost": "h.azure-devices.net", "deviceId": "{deviceId}", "n": float64(3)}
	read, err := s.GetGroup(c, "lamps")
	if err != nil {
		t.Fatalf("GetGroup: %v", err)
	}
	for _, g := range []secrets.Group{got, read} {
		if g.ID != want.ID || g.Cloud != want.Cloud || g.Secret != want.Secret || !reflect.DeepEqual(g.Params, want.Params) ||
			!reflect.DeepEqual(g.Labels, want.Labels) || !reflect.DeepEqual(g.Registration, want.Registration) ||
			g.RequireAttestation != want.RequireAttestation {
			t.Fatalf("group round trip:\n got %+v\nwant %+v", redactGroup(g), redactGroup(want))
		}
	}
	if read.Version != 1 {
		t.Errorf("read version %d, want 1", read.Version)
	}
	// The caller's maps are not shared with the store.
	read.Params["hubHost"] = "changed"
	read.Registration.Params["idScope"] = "changed"
	if again, _ := s.GetGroup(c, "lamps"); again.Params["hubHost"] != "h.azure-devices.net" || again.Registration.Params["idScope"] != "0ne00000001" {
		t.Errorf("a returned group shares maps with the store")
	}
	// Compare-and-set, as for devices.
	for _, tc := range []struct {
		ifVersion int64
		ok        bool
	}{{0, false}, {5, false}, {1, true}, {1, false}, {-1, true}} {
		in.Labels = map[string]string{"v": fmt.Sprint(tc.ifVersion)}
		_, err := s.PutGroup(c, in, tc.ifVersion)
		noSecret(t, err, secret)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, secrets.ErrConflict)) {
			t.Errorf("PutGroup ifVersion %d: %v, want ok=%v (else ErrConflict)", tc.ifVersion, err, tc.ok)
		}
	}
	if g, _ := s.GetGroup(c, "lamps"); g.Version != 3 || !g.CreatedAt.Equal(got.CreatedAt) || g.Labels["v"] != "-1" {
		t.Errorf("after two updates: version %d (want 3), createdAt %v (want %v), labels %v", g.Version, g.CreatedAt, got.CreatedAt, g.Labels)
	}
	if _, err := s.PutGroup(c, secrets.Group{ID: "ghost", Cloud: "azure"}, 1); !errors.Is(err, secrets.ErrConflict) {
		t.Errorf("update of a missing group: %v, want ErrConflict", err)
	}
	// Concurrent creators: one wins.
	wins, _ := race(t, "racing create", 6, func(int) error {
		_, err := s.PutGroup(c, secrets.Group{ID: "race", Cloud: "aliyun", Secret: secret}, 0)
		return err
	})
	if wins != 1 {
		t.Errorf("%d racing group creates won, want 1", wins)
	}
	// Invalid IDs.
	for _, id := range []string{"", "../x", "a/b", strings.Repeat("a", 129)} {
		if _, err := s.GetGroup(c, id); !errors.Is(err, secrets.ErrInvalid) {
			t.Errorf("GetGroup(%.20q): %v, want ErrInvalid", id, err)
		}
		if _, err := s.PutGroup(c, secrets.Group{ID: id, Cloud: "azure", Secret: secret}, -1); !errors.Is(err, secrets.ErrInvalid) {
			t.Errorf("PutGroup(%.20q): %v, want ErrInvalid", id, err)
		}
		if err := s.DeleteGroup(c, id); !errors.Is(err, secrets.ErrInvalid) {
			t.Errorf("DeleteGroup(%.20q): %v, want ErrInvalid", id, err)
		}
	}
	// Pagination over groups, and groups are not devices.
	for i := range 5 {
		if _, err := s.PutGroup(c, secrets.Group{ID: fmt.Sprintf("g%d", i), Cloud: "tencent", Secret: secret}, 0); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		p, err := s.ListGroups(c, after, 2)
		if err != nil {
			t.Fatalf("ListGroups: %v", err)
		}
		if len(p.Groups) > 2 || pages > 10 {
			t.Fatalf("page of %d groups, or too many pages", len(p.Groups))
		}
		for _, g := range p.Groups {
			ids = append(ids, g.ID)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if want := []string{"g0", "g1", "g2", "g3", "g4", "lamps", "race"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("listed groups %v, want %v", ids, want)
	}
	if p, err := s.ListDevices(c, secrets.ListOptions{}); err != nil || len(p.Devices) != 0 {
		t.Errorf("devices after writing groups: %d, %v", len(p.Devices), err)
	}
	// Delete. A group created again under the same ID is another group:
	// its CreatedAt differs (enrolment tokens tell the two apart by it), and
	// CreatedAt reads back exactly as PutGroup returned it.
	before, err := s.GetGroup(c, "lamps")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(c, "lamps"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if _, err := s.GetGroup(c, "lamps"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("GetGroup after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteGroup(c, "lamps"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("second DeleteGroup: %v, want ErrNotFound", err)
	}
	again, err := s.PutGroup(c, secrets.Group{ID: "lamps", Cloud: "azure", Secret: secret}, 0)
	if err != nil || again.Version != 1 {
		t.Errorf("create after delete: version %d, %v", again.Version, err)
	}
	if again.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("a group created again has the CreatedAt of the one deleted (%v)", before.CreatedAt)
	}
	if read, err := s.GetGroup(c, "lamps"); err != nil || !read.CreatedAt.Equal(again.CreatedAt) {
		t.Errorf("CreatedAt read back %v, written %v (%v)", read.CreatedAt, again.CreatedAt, err)
	}
}

func redactGroup(g secrets.Group) secrets.Group {
	g.Secret = "<redacted>"
	return g
}

// testDeviceGroup checks that a device keeps its group, with or without a
// secret of its own, through PutDevice, GetDevice, ListDevices and the
// bulk path.
func testDeviceGroup(t *testing.T, s secrets.Store) {
	c := ctx(t)
	d := secrets.Device{ID: "member", Cloud: "azure", Group: "lamps", Params: map[string]any{"hubHost": "h", "deviceId": "member"}}
	if got := mustPut(t, s, d, 0); got.Group != "lamps" || got.Secret != "" {
		t.Errorf("PutDevice returned group %q, secret set %v", got.Group, got.Secret != "")
	}
	if got, err := s.GetDevice(c, "member"); err != nil || got.Group != "lamps" {
		t.Errorf("GetDevice: group %q, %v", got.Group, err)
	}
	res := secrets.PutDevices(c, s, []secrets.DevicePut{
		{Device: secrets.Device{ID: "bulk-member", Cloud: "azure", Group: "lamps"}, IfVersion: 0},
		{Device: secrets.Device{ID: "loner", Cloud: "azure", Secret: NewSecret()}, IfVersion: 0},
	})
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("bulk item %d: %v", i, r.Err)
		}
	}
	p, err := s.ListDevices(c, secrets.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range p.Devices {
		got[d.ID] = d.Group
	}
	if want := map[string]string{"bulk-member": "lamps", "loner": "", "member": "lamps"}; !reflect.DeepEqual(got, want) {
		t.Errorf("listed groups of devices %v, want %v", got, want)
	}
}
