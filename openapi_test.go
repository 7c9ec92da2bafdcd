package credsign

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/credsign/credsign/cloud"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	return doc
}

// TestOpenAPIValid validates the document, its examples and defaults.
func TestOpenAPIValid(t *testing.T) {
	doc := loadSpec(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi: %s, want 3.0.3", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation(), openapi3.EnableSchemaDefaultsValidation(), openapi3.EnableSchemaPatternValidation()); err != nil {
		t.Fatalf("openapi.yaml is invalid: %v", err)
	}
}

// TestOpenAPIRules checks the project's conventions for every operation.
func TestOpenAPIRules(t *testing.T) {
	doc := loadSpec(t)
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s: missing or duplicate operationId %q", where, op.OperationID)
			}
			ids[op.OperationID] = true
			if op.Summary == "" || len(op.Tags) == 0 {
				t.Errorf("%s: needs a summary and a tag", where)
			}
			want := []string{"500"}
			public := op.Security != nil && len(*op.Security) == 0
			if !public {
				want = append(want, "401", "403", "429", "503")
			}
			if op.RequestBody != nil {
				want = append(want, "400", "413", "415", "422")
			}
			if len(item.Parameters) > 0 || len(op.Parameters) > 0 {
				want = append(want, "400")
			}
			// What a path names may not exist; a PUT creates it instead
			// (putDevice still says 404, for If-Match on no device).
			if strings.Contains(path, "{") && method != http.MethodPut {
				want = append(want, "404")
			}
			for _, code := range want {
				r := op.Responses.Value(code)
				if r == nil {
					t.Errorf("%s: does not declare %s", where, code)
					continue
				}
				if r.Value.Content.Get("application/problem+json") == nil {
					t.Errorf("%s: %s is not problem JSON", where, code)
				}
			}
			for code, r := range op.Responses.Map() {
				if code >= "400" && r.Value.Content.Get("application/problem+json") == nil {
					t.Errorf("%s: %s is not problem JSON", where, code)
				}
			}
		}
	}
	// The secret is write-only wherever it appears.
	dd := doc.Components.Schemas["DeviceDocument"].Value
	if s := dd.Properties["secret"]; s == nil || !s.Value.WriteOnly {
		t.Errorf("DeviceDocument.secret must be writeOnly")
	}
	if _, ok := doc.Components.Schemas["Device"].Value.Properties["secret"]; ok {
		t.Errorf("Device must not have a secret")
	}
	// Credentials carry exactly the fields the cloud core writes (the
	// design's twelve, plus topics and alpn), and the design's twelve are
	// all required.
	got := []string{}
	for name := range doc.Components.Schemas["Credentials"].Value.Properties {
		got = append(got, name)
	}
	slices.Sort(got)
	var want []string
	ct := reflect.TypeFor[cloud.Credentials]()
	for i := range ct.NumField() {
		name, _, _ := strings.Cut(ct.Field(i).Tag.Get("json"), ",")
		want = append(want, name)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Credentials properties %v, want those of cloud.Credentials %v", got, want)
	}
	required := doc.Components.Schemas["Credentials"].Value.Required
	for _, f := range []string{"clientId", "cloud", "deviceId", "expiresAt", "expiryEnforced", "host", "issuedAt", "password", "port", "refreshAfter", "tls", "username", "topics"} {
		if !slices.Contains(required, f) {
			t.Errorf("Credentials.%s is not required", f)
		}
	}
}
