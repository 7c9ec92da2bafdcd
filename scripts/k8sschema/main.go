// Command k8sschema writes one standalone, strict JSON schema per Kubernetes
// kind, in the layout kubeconform reads (-schema-location
// 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json'), from the API server's
// OpenAPI v2 document (api/openapi-spec/swagger.json in the k8s.io/kubernetes
// module) and from CustomResourceDefinition YAML files. It lets CI validate
// rendered manifests with no network: scripts/deploy-tools.sh runs it.
//
// usage: k8sschema -out DIR [-swagger FILE] [CRD.yaml...]
//
// The schemas are "strict": an object with declared properties admits no
// other key, so a misspelt field fails validation. As the API server does,
// they accept null for any field, an integer or a string where the API says
// int-or-string, and a number or a string for a resource quantity.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"
)

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2

	intOrStringDef = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
	quantityDef    = "io.k8s.apimachinery.pkg.api.resource.Quantity"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("k8sschema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the schemas to (created)")
	swagger := fs.String("swagger", "", "the Kubernetes OpenAPI v2 document (swagger.json)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: k8sschema -out DIR [-swagger FILE] [CRD.yaml...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *out == "" || (*swagger == "" && fs.NArg() == 0) {
		fmt.Fprintln(stderr, "k8sschema: -out and at least one of -swagger or a CRD file are required")
		return exitUsage
	}
	schemas := map[string]map[string]any{}
	if *swagger != "" {
		b, err := os.ReadFile(*swagger)
		if err != nil {
			fmt.Fprintf(stderr, "k8sschema: %v\n", err)
			return exitError
		}
		if err := fromSwagger(b, schemas); err != nil {
			fmt.Fprintf(stderr, "k8sschema: %s: %v\n", *swagger, err)
			return exitError
		}
	}
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "k8sschema: %v\n", err)
			return exitError
		}
		if err := fromCRD(b, schemas); err != nil {
			fmt.Fprintf(stderr, "k8sschema: %s: %v\n", path, err)
			return exitError
		}
	}
	if err := write(*out, schemas); err != nil {
		fmt.Fprintf(stderr, "k8sschema: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stderr, "k8sschema: wrote %d schemas to %s\n", len(schemas), *out)
	return exitOK
}

// fileName is the name kubeconform derives from a kind and an apiVersion:
// the lower-case kind, the first label of the group, the version.
func fileName(group, version, kind string) string {
	name := strings.ToLower(kind)
	if group != "" {
		name += "-" + strings.ToLower(strings.Split(group, ".")[0])
	}
	return name + "-" + strings.ToLower(version) + ".json"
}

func apiVersion(group, version string) string {
	if group == "" {
		return version
	}
	return group + "/" + version
}

// add stores one kind's schema, refusing two kinds that would share a file.
func add(schemas map[string]map[string]any, group, version, kind string, s map[string]any) error {
	name := fileName(group, version, kind)
	if prev, ok := schemas[name]; ok {
		return fmt.Errorf("%s and %s %s both map to %s", prev["x-api-version"], apiVersion(group, version), kind, name)
	}
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		return fmt.Errorf("%s %s: schema has no properties", apiVersion(group, version), kind)
	}
	// A document must name exactly this kind and version to match.
	props["apiVersion"] = map[string]any{"type": "string", "enum": []any{apiVersion(group, version)}}
	props["kind"] = map[string]any{"type": "string", "enum": []any{kind}}
	s["$schema"] = "http://json-schema.org/draft-07/schema#"
	s["x-api-version"] = apiVersion(group, version)
	schemas[name] = s
	return nil
}

// fromSwagger adds a schema for every definition that carries an
// x-kubernetes-group-version-kind, with every $ref inlined.
func fromSwagger(b []byte, schemas map[string]map[string]any) error {
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	if len(doc.Definitions) == 0 {
		return errors.New("no definitions")
	}
	names := make([]string, 0, len(doc.Definitions))
	for n := range doc.Definitions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		def := doc.Definitions[n]
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			if version == "" || kind == "" {
				return fmt.Errorf("%s: incomplete x-kubernetes-group-version-kind", n)
			}
			if !isTopLevel(def) {
				continue // e.g. DeleteOptions, WatchEvent: not objects one applies
			}
			s, err := inline(def, doc.Definitions, map[string]bool{n: true})
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			if err := add(schemas, group, version, kind, s.(map[string]any)); err != nil {
				return err
			}
		}
	}
	return nil
}

// isTopLevel reports whether a definition is an object one can apply: it has
// apiVersion, kind and metadata.
func isTopLevel(def map[string]any) bool {
	props, _ := def["properties"].(map[string]any)
	_, a := props["apiVersion"]
	_, k := props["kind"]
	_, m := props["metadata"]
	return a && k && m
}

// inline returns a copy of the swagger schema v with $refs replaced by the
// definitions they name, made strict and null-tolerant. A reference back to
// a definition being inlined (only the CRD validation schema type has one)
// becomes an empty schema, which admits anything.
func inline(v any, defs map[string]map[string]any, seen map[string]bool) (any, error) {
	m, isObject := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/definitions/")
		switch name {
		case intOrStringDef:
			return intOrString(), nil
		case quantityDef:
			return map[string]any{"oneOf": []any{nullable("string"), nullable("number")}}, nil
		}
		if seen[name] {
			return map[string]any{}, nil
		}
		def, ok := defs[name]
		if !ok {
			return nil, fmt.Errorf("unknown $ref %s", ref)
		}
		seen[name] = true
		defer delete(seen, name)
		return inline(def, defs, seen)
	}
	c, err := copySchema(v, func(e any) (any, error) { return inline(e, defs, seen) })
	if err != nil || !isObject {
		return c, err
	}
	if m["format"] == "int-or-string" {
		return intOrString(), nil
	}
	out := c.(map[string]any)
	strict(out)
	if t, ok := out["type"].(string); ok {
		out["type"] = []any{t, "null"}
	}
	return out, nil
}

// copySchema copies the schema value v: an object schema without its
// description, format and Kubernetes extensions, an array item by item,
// anything else as it is. conv copies each value kept (each property's
// schema) and each item.
func copySchema(v any, conv func(any) (any, error)) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			switch {
			case k == "description", k == "format", strings.HasPrefix(k, "x-kubernetes-"):
			case k == "properties":
				props := map[string]any{}
				for pn, ps := range e.(map[string]any) {
					c, err := conv(ps)
					if err != nil {
						return nil, err
					}
					props[pn] = c
				}
				out[k] = props
			default:
				c, err := conv(e)
				if err != nil {
					return nil, err
				}
				out[k] = c
			}
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, err := conv(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	default:
		return v, nil
	}
}

// strict forbids undeclared keys in an object schema that declares its
// properties and says nothing about others.
func strict(s map[string]any) {
	if _, ok := s["properties"]; !ok {
		return
	}
	if _, ok := s["additionalProperties"]; !ok {
		s["additionalProperties"] = false
	}
}

func nullable(t string) map[string]any {
	return map[string]any{"type": []any{t, "null"}}
}

func intOrString() map[string]any {
	return map[string]any{"oneOf": []any{nullable("string"), map[string]any{"type": "integer"}}}
}

// fromCRD adds a schema for every served version of every
// CustomResourceDefinition in a (multi-document) YAML file.
func fromCRD(b []byte, schemas map[string]map[string]any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	found := 0
	for {
		var crd struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Group string `yaml:"group"`
				Names struct {
					Kind string `yaml:"kind"`
				} `yaml:"names"`
				Versions []struct {
					Name   string `yaml:"name"`
					Served bool   `yaml:"served"`
					Schema struct {
						OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
					} `yaml:"schema"`
				} `yaml:"versions"`
			} `yaml:"spec"`
		}
		err := dec.Decode(&crd)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			if v.Schema.OpenAPIV3Schema == nil {
				return fmt.Errorf("%s %s has no openAPIV3Schema", crd.Spec.Names.Kind, v.Name)
			}
			s := crdSchema(v.Schema.OpenAPIV3Schema).(map[string]any)
			props, _ := s["properties"].(map[string]any)
			if props != nil {
				if _, ok := props["metadata"]; !ok || len(props["metadata"].(map[string]any)) <= 1 {
					props["metadata"] = map[string]any{"type": "object"}
				}
			}
			if err := add(schemas, crd.Spec.Group, v.Name, crd.Spec.Names.Kind, s); err != nil {
				return err
			}
			found++
		}
	}
	if found == 0 {
		return errors.New("no served CustomResourceDefinition version")
	}
	return nil
}

// crdSchema makes a CRD's OpenAPI v3 schema strict, with the Kubernetes
// extensions it uses turned into plain JSON schema.
func crdSchema(v any) any {
	m, isObject := v.(map[string]any)
	if m["x-kubernetes-int-or-string"] == true {
		return intOrString()
	}
	out, _ := copySchema(v, func(e any) (any, error) { return crdSchema(e), nil })
	if isObject && m["x-kubernetes-preserve-unknown-fields"] != true {
		strict(out.(map[string]any))
	}
	return out
}

func write(dir string, schemas map[string]map[string]any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, s := range schemas {
		b, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
