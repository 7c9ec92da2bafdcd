package vaultstore

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credsign/credsign/internal/testing/testutil"
	"github.com/credsign/credsign/internal/testing/vaulttest"
)

// serviceAccountJWT returns a service account token in the legacy format
// Vault's Kubernetes auth reads claims from. Vault does not check its
// signature (no keys are configured); the fake TokenReview API vouches for it.
func serviceAccountJWT(t *testing.T, key *rsa.PrivateKey, jti string) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + enc(map[string]any{
		"iss":                                    "kubernetes/serviceaccount",
		"sub":                                    "system:serviceaccount:iot:credsign",
		"jti":                                    jti,
		"kubernetes.io/serviceaccount/namespace": "iot",
		"kubernetes.io/serviceaccount/service-account.name": "credsign",
		"kubernetes.io/serviceaccount/service-account.uid":  "0b0e1f5e-uid",
	})
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestKubernetesLogin runs Kubernetes auth in a real Vault against a fake
// Kubernetes TokenReview API (the tests have no cluster). Tokens live 2 s, at
// most 4 s, so the store must log in again, reading the service account token
// file anew each time (kubelet rotates projected tokens).
func TestKubernetesLogin(t *testing.T) {
	var (
		mu       sync.Mutex
		reviewed = map[string]int{}
	)
	k8s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review struct {
			Spec struct {
				Token string `json:"token"`
			} `json:"spec"`
		}
		if r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" || json.NewDecoder(r.Body).Decode(&review) != nil {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		reviewed[review.Spec.Token]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,`+
			`"user":{"username":"system:serviceaccount:iot:credsign","uid":"0b0e1f5e-uid"}}}`)
	}))
	defer k8s.Close()

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	reviewer, first, second := serviceAccountJWT(t, key, "reviewer"), serviceAccountJWT(t, key, "first"), serviceAccountJWT(t, key, "second")

	srv := vaulttest.Start(t)
	policyToken(t, srv, "1h") // installs the policy
	root := srv.Client(t)
	if err := root.Sys().EnableAuthWithOptions("kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatalf("enable kubernetes auth: %v", err)
	}
	for path, data := range map[string]map[string]any{
		"auth/kubernetes/config": {"kubernetes_host": k8s.URL, "token_reviewer_jwt": reviewer,
			"disable_local_ca_jwt": true, "disable_iss_validation": true,
			"kubernetes_ca_cert": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k8s.Certificate().Raw}))},
		"auth/kubernetes/role/credsign": {"bound_service_account_names": "credsign", "bound_service_account_namespaces": "iot",
			"token_policies": "credsign", "token_no_default_policy": true, "token_ttl": "2s", "token_max_ttl": "4s"},
	} {
		if _, err := root.Logical().Write(path, data); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(srv, "")
	cfg.Auth, cfg.K8sRole, cfg.K8sTokenFile, cfg.Timeout = AuthKubernetes, "credsign", tokenFile, 2*time.Second
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New with kubernetes auth: %v", err)
	}
	defer s.Close()
	if err := os.WriteFile(tokenFile, []byte(second), 0o600); err != nil { // rotated by kubelet
		t.Fatal(err)
	}
	// Past the token's max TTL (4s) the store logs in again, with the
	// rotated service account token; calls work throughout.
	testutil.Eventually(t, 7*time.Second, func() error {
		mustWork(t, s, "with kubernetes auth")
		mu.Lock()
		defer mu.Unlock()
		if reviewed[second] < 1 {
			return errors.New("no login with the rotated service account token")
		}
		return nil
	})
	mustWork(t, s, "after a login with the rotated token")
	mu.Lock()
	defer mu.Unlock()
	if reviewed[first] != 1 || reviewed[second] < 1 {
		t.Fatalf("TokenReview saw the first token %d times and the rotated one %d times; want 1 and at least 1",
			reviewed[first], reviewed[second])
	}
}
