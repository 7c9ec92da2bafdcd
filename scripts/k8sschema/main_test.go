package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/testutil"
)

// swagger is a cut-down Kubernetes OpenAPI v2 document in the shape of
// api/openapi-spec/swagger.json: a kind with a $ref, an int-or-string, a
// quantity, a map, and a self-referencing type.
const swagger = `{"definitions": {
  "io.k8s.api.apps.v1.Widget": {
    "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Widget"}],
    "type": "object",
    "description": "dropped",
    "properties": {
      "apiVersion": {"type": "string"},
      "kind": {"type": "string"},
      "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
      "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.WidgetSpec"}
    }
  },
  "io.k8s.api.apps.v1.WidgetSpec": {
    "type": "object",
    "required": ["port"],
    "properties": {
      "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
      "memory": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
      "replicas": {"type": "integer", "format": "int32"},
      "self": {"$ref": "#/definitions/io.k8s.api.apps.v1.WidgetSpec"}
    }
  },
  "io.k8s.api.core.v1.Thing": {
    "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Thing"}],
    "type": "object",
    "properties": {
      "apiVersion": {"type": "string"},
      "kind": {"type": "string"},
      "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    }
  },
  "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions": {
    "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "DeleteOptions"}],
    "type": "object",
    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}
  },
  "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
    "type": "object",
    "properties": {
      "name": {"type": "string"},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}}
    }
  },
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"}
}}`

const crd = `# a comment
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-crd}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
  labels:
    app: '{{ template "ignored" . }}'
spec:
  group: example.com
  names: {kind: Gadget}
  versions:
    - name: v1
      served: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              properties:
                port: {x-kubernetes-int-or-string: true}
                extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
    - name: v0
      served: false
      schema:
        openAPIV3Schema: {type: object}
`

func generate(t *testing.T) (string, map[string]map[string]any) {
	t.Helper()
	dir := t.TempDir()
	sw := filepath.Join(dir, "swagger.json")
	crdFile := filepath.Join(dir, "crd.yaml")
	if err := os.WriteFile(sw, []byte(swagger), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crdFile, []byte(crd), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "schemas")
	var stderr bytes.Buffer
	if code := run([]string{"-out", out, "-swagger", sw, crdFile}, &stderr); code != exitOK {
		t.Fatalf("run = %d, stderr %s", code, stderr.String())
	}
	got := map[string]map[string]any{}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		got[e.Name()] = s
	}
	return out, got
}

// at walks a schema along property names.
func at(t *testing.T, s map[string]any, path ...string) map[string]any {
	t.Helper()
	for _, p := range path {
		props, _ := s["properties"].(map[string]any)
		next, ok := props[p].(map[string]any)
		if !ok {
			t.Fatalf("no property %q on the way to %v", p, path)
		}
		s = next
	}
	return s
}

func TestFileNamesAreKubeconformsKindSuffix(t *testing.T) {
	_, got := generate(t)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	want := []string{"gadget-example-v1.json", "thing-v1.json", "widget-apps-v1.json"}
	slices.Sort(names)
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("files %v, want %v (DeleteOptions has no metadata and v0 is not served)", names, want)
	}
}

func TestSchemasAreInlinedStrictAndNullTolerant(t *testing.T) {
	_, got := generate(t)
	w := got["widget-apps-v1.json"]
	tests := []struct {
		name string
		path []string
		key  string
		want any
	}{
		{"kind is pinned", []string{"kind"}, "enum", []any{"Widget"}},
		{"apiVersion is pinned", []string{"apiVersion"}, "enum", []any{"apps/v1"}},
		{"top level strict", nil, "additionalProperties", false},
		{"$ref inlined and strict", []string{"spec"}, "additionalProperties", false},
		{"required kept", []string{"spec"}, "required", []any{"port"}},
		{"null allowed", []string{"spec", "replicas"}, "type", []any{"integer", "null"}},
		{"int-or-string", []string{"spec", "port"}, "oneOf", []any{map[string]any{"type": []any{"string", "null"}}, map[string]any{"type": "integer"}}},
		{"quantity", []string{"spec", "memory"}, "oneOf", []any{map[string]any{"type": []any{"string", "null"}}, map[string]any{"type": []any{"number", "null"}}}},
		{"map values kept", []string{"metadata", "labels"}, "additionalProperties", map[string]any{"type": []any{"string", "null"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := at(t, w, tc.path...)
			if !reflect.DeepEqual(s[tc.key], tc.want) {
				t.Fatalf("%v.%s = %#v, want %#v", tc.path, tc.key, s[tc.key], tc.want)
			}
		})
	}
	if self := at(t, w, "spec", "self"); len(self) != 0 {
		t.Errorf("a self reference should become the empty schema, got %v", self)
	}
	if _, ok := w["description"]; ok {
		t.Error("descriptions should be dropped")
	}
	if f, ok := at(t, w, "spec", "replicas")["format"]; ok {
		t.Errorf("format %v should be dropped", f)
	}
}

func TestCRDSchemas(t *testing.T) {
	_, got := generate(t)
	g := got["gadget-example-v1.json"]
	if g == nil {
		t.Fatal("no gadget schema")
	}
	if at(t, g, "apiVersion")["enum"].([]any)[0] != "example.com/v1" {
		t.Errorf("apiVersion not pinned: %v", at(t, g, "apiVersion"))
	}
	if at(t, g, "spec")["additionalProperties"] != false {
		t.Error("spec should be strict")
	}
	if _, ok := at(t, g, "spec", "extra")["additionalProperties"]; ok {
		t.Error("x-kubernetes-preserve-unknown-fields must stay open")
	}
	if _, ok := at(t, g, "spec", "port")["oneOf"]; !ok {
		t.Error("x-kubernetes-int-or-string should become oneOf")
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string { return testutil.WriteFile(t, name, []byte(body)) }
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no out", []string{"-swagger", "x"}, exitUsage, "-out"},
		{"no input", []string{"-out", dir}, exitUsage, "-swagger"},
		{"missing file", []string{"-out", dir, "-swagger", filepath.Join(dir, "nope.json")}, exitError, "nope.json"},
		{"not json", []string{"-out", dir, "-swagger", write("bad.json", "{")}, exitError, "bad.json"},
		{"no definitions", []string{"-out", dir, "-swagger", write("empty.json", "{}")}, exitError, "no definitions"},
		{"dangling ref", []string{"-out", dir, "-swagger", write("ref.json", `{"definitions": {"a.K": {
			"x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "K"}],
			"properties": {"apiVersion": {}, "kind": {}, "metadata": {"$ref": "#/definitions/missing"}}}}}`)}, exitError, "unknown $ref"},
		{"no CRD", []string{"-out", dir, write("cm.yaml", "kind: ConfigMap\n")}, exitError, "no served CustomResourceDefinition"},
		{"two kinds one file", []string{"-out", dir, write("dup.yaml", strings.Repeat("---\n"+crd, 2))}, exitError, "both map to gadget-example-v1.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tc.args, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("run = %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}
