package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/credsign/credsign/secrets"
)

// TestGroupRegistrationKindOfAnotherCloud: a group whose registration kind
// registers another cloud's devices is refused naming registration.kind
// (the registry says which cloud each kind serves), and nothing is stored;
// the same kind with its own cloud is taken.
func TestGroupRegistrationKindOfAnotherCloud(t *testing.T) {
	s, _ := newService(t, Config{Registrar: &standInRegistrar{}})
	ctx := context.Background()
	doc := GroupDocument{Cloud: "tencent", Secret: "product-secret-0123456789", Params: map[string]any{"productId": "P1", "deviceName": "{deviceId}"},
		Registration: &secrets.Registration{Kind: RegistrationAliyunDynamic, Params: map[string]string{"productKey": "a1B2c3D4e5F"}}}
	_, _, err := s.PutGroup(ctx, adminCaller, "mixed", doc)
	var reason string
	for _, f := range InvalidFields(err) {
		if f.Field == "registration.kind" {
			reason = f.Reason
		}
	}
	if !strings.Contains(reason, "aliyun") || !strings.Contains(reason, "tencent") {
		t.Fatalf("err = %v, want a fault of registration.kind naming both clouds", err)
	}
	if _, err := s.store.GetGroup(ctx, "mixed"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("the refused group was stored: %v", err)
	}
	doc.Cloud, doc.Params = "aliyun", map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": "{deviceId}"}
	if _, _, err := s.PutGroup(ctx, adminCaller, "mixed", doc); err != nil {
		t.Errorf("the kind with its own cloud: %v", err)
	}
}
