package credsign

import (
	"context"
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

// problemResponse is the response every operation answers its failures
// with (its default).
const problemResponse = "#/components/responses/Problem"

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
			// Every failure is covered by the shared problem response,
			// the operation's default; an error status is listed beside
			// it only for what default cannot say: a header (or a schema)
			// of its own.
			def := op.Responses.Default()
			if def == nil || def.Ref != problemResponse {
				t.Errorf("%s: default is not %s", where, problemResponse)
			}
			var want []string
			public := op.Security != nil && len(*op.Security) == 0
			if !public {
				want = append(want, "401", "429", "503")
			}
			for _, code := range want {
				if op.Responses.Value(code) == nil {
					t.Errorf("%s: does not declare %s", where, code)
				}
			}
			for code, r := range op.Responses.Map() {
				if code == "default" || code < "400" {
					continue
				}
				mt := r.Value.Content.Get("application/problem+json")
				if mt == nil {
					t.Errorf("%s: %s is not problem JSON", where, code)
					continue
				}
				if r.Ref == problemResponse || (len(r.Value.Headers) == 0 && mt.Schema.Ref == "#/components/schemas/Problem") {
					t.Errorf("%s: %s says nothing default does not (no header or schema of its own); leave it to default", where, code)
				}
			}
		}
	}
	// The shared problem response is problem JSON of the Problem schema.
	pr := doc.Components.Responses["Problem"]
	if pr == nil || pr.Value.Content.Get("application/problem+json") == nil ||
		pr.Value.Content.Get("application/problem+json").Schema.Ref != "#/components/schemas/Problem" || len(pr.Value.Content) != 1 {
		t.Errorf("components/responses/Problem must be application/problem+json of #/components/schemas/Problem, alone")
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
