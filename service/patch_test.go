package service

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/secrets"
)

func TestPatchAndRotate(t *testing.T) {
	s, _ := newService(t, Config{})
	patchAndRotate(t, s, s.store)
}

// TestPatchAndRotateVault is TestPatchAndRotate on a real Vault.
func TestPatchAndRotateVault(t *testing.T) {
	s, st := newVaultService(t, Config{})
	patchAndRotate(t, s, st)
}

// patchAndRotate patches a device (the secret kept, concurrent patches
// without a precondition both landing), rotates its secret (the device
// token still works, the credentials change, the store keeps the previous
// secret, the doctor recognises it) and checks that refusals change
// nothing.
func patchAndRotate(t *testing.T, s *Service, st secrets.Store) {
	ctx := context.Background()
	const first, second = "c2VjcmV0LWtleS0xMjM0NTY3ODkw", "bmV3LXNlY3JldC1rZXktMDk4NzY1"
	if _, _, err := s.PutDevice(ctx, adminCaller, "rot", azure(first), Precondition{}); err != nil {
		t.Fatal(err)
	}
	m, err := s.MintDeviceToken(ctx, adminCaller, "rot")
	if err != nil {
		t.Fatal(err)
	}
	issue := func() cloud.Credentials {
		t.Helper()
		p, err := s.Authenticate(ctx, "Bearer "+m.Text)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Issue(ctx, p, "rot", 0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	before := issue()

	// Two patches at once, without a precondition: both land.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, k := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.PatchDevice(ctx, adminCaller, "rot", map[string]any{"labels": map[string]any{k: "1"}}, Precondition{})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	d, err := st.GetDevice(ctx, "rot")
	if err != nil || d.Labels["a"] != "1" || d.Labels["b"] != "1" || d.Secret != first || d.SecretVersion != 1 || d.Version != 3 {
		t.Fatalf("after two patches: labels %v, secret kept %t, secretVersion %d, version %d, %v",
			d.Labels, d.Secret == first, d.SecretVersion, d.Version, err)
	}

	// Refusals change nothing.
	stale := Precondition{Match: func(cur secrets.Device) bool { return cur.Version == 1 }}
	refusals := []struct {
		name string
		err  func() error
		code Code
	}{
		{"patch with a stale precondition", func() error {
			_, err := s.PatchDevice(ctx, adminCaller, "rot", map[string]any{"labels": nil}, stale)
			return err
		}, CodePrecondition},
		{"rotate with a stale precondition", func() error {
			_, err := s.RotateSecret(ctx, adminCaller, "rot", second, stale)
			return err
		}, CodePrecondition},
		{"rotate to the current secret", func() error {
			_, err := s.RotateSecret(ctx, adminCaller, "rot", first, Precondition{})
			return err
		}, CodeInvalid},
		{"rotate to a secret the cloud refuses", func() error {
			_, err := s.RotateSecret(ctx, adminCaller, "rot", "not base64!", Precondition{})
			return err
		}, CodeInvalid},
		{"patch to a cloud the params do not fit", func() error {
			_, err := s.PatchDevice(ctx, adminCaller, "rot", map[string]any{"cloud": "aliyun"}, Precondition{})
			return err
		}, CodeInvalid},
	}
	for _, tc := range refusals {
		err := tc.err()
		var se *Error
		if !errors.As(err, &se) || se.Code != tc.code {
			t.Fatalf("%s: %v, want %s", tc.name, err, tc.code)
		}
		if strings.Contains(err.Error(), first) || strings.Contains(err.Error(), second) {
			t.Fatalf("%s: the error quotes a secret", tc.name)
		}
		if now, _ := st.GetDevice(ctx, "rot"); now.Version != d.Version {
			t.Fatalf("%s: the device was written", tc.name)
		}
	}

	rotated, err := s.RotateSecret(ctx, adminCaller, "rot", second, Precondition{Match: func(cur secrets.Device) bool { return cur.Version == d.Version }})
	if err != nil {
		t.Fatal(err)
	}
	if rotated.SecretVersion != 2 || rotated.Secret != "" || rotated.PreviousSecret != "" || rotated.SecretRotatedAt == nil {
		t.Fatalf("RotateSecret returned secretVersion %d, rotatedAt %v, a secret %t", rotated.SecretVersion, rotated.SecretRotatedAt,
			rotated.Secret != "" || rotated.PreviousSecret != "")
	}
	stored, err := st.GetDevice(ctx, "rot")
	if err != nil || stored.Secret != second || stored.PreviousSecret != first || stored.Labels["a"] != "1" || !stored.CreatedAt.Equal(d.CreatedAt) {
		t.Fatalf("stored after the rotation: new secret %t, previous kept %t, labels %v, %v",
			stored.Secret == second, stored.PreviousSecret == first, stored.Labels, err)
	}
	after := issue() // the same device token
	if after.Password == before.Password {
		t.Fatal("the credentials did not change")
	}
	for _, tc := range []struct {
		c      cloud.Credentials
		secret string
	}{{after, SecretCurrent}, {before, SecretPrevious}} {
		rep, err := s.Doctor(ctx, adminCaller, "rot", cloud.Triple{ClientID: tc.c.ClientID, Username: tc.c.Username, Password: tc.c.Password}, cloud.NoConnack, tc.c.IssuedAt)
		if err != nil || !rep.Match || rep.Secret != tc.secret || rep.SecretVersion != 2 {
			t.Fatalf("doctor: match %t secret %q version %d, want a match with the %s secret: %v", rep.Match, rep.Secret, rep.SecretVersion, tc.secret, err)
		}
	}
}
