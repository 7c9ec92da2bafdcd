package apiclient_test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/servertest"
	"github.com/credsign/credsign/service"
)

// servedSpec starts a real server and returns the contract it serves at
// /openapi.yaml, written to a file in dir.
func servedSpec(t *testing.T, dir string) string {
	t.Helper()
	ts, _ := servertest.Start(t, service.Config{AdminToken: "csa_served-spec-test-admin-0123456789"})
	res, err := http.Get(ts.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d %v", res.StatusCode, err)
	}
	p := filepath.Join(dir, "openapi.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// repoRoot is the module's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func command(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestGoClientFromServedSpec generates a Go client of every operation from
// the contract a running server serves, as a user of the API would, and
// compiles it with a program that calls it and reads a failure's problem
// from the default response: a contract oapi-codegen cannot turn into
// compiling Go fails here.
func TestGoClientFromServedSpec(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds a module")
	}
	dir := t.TempDir()
	spec := servedSpec(t, dir)
	gen := filepath.Join(dir, "gen")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "package: gen\noutput: " + filepath.Join(gen, "gen.go") + "\ngenerate:\n  models: true\n  client: true\n"
	if err := os.WriteFile(filepath.Join(dir, "cfg.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	root := repoRoot(t)
	// The generator the repository pins (internal/apiclient/generate.go).
	command(t, root, nil, "go", "run", "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2", "--config", filepath.Join(dir, "cfg.yaml"), spec)

	// A module of its own, with the repository's requirements (the
	// generated code needs oapi-codegen's runtime), built offline.
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(mod), "\n")
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	main := `package main

import (
	"context"
	"fmt"

	"served/gen"
)

func main() {
	c, err := gen.NewClientWithResponses("http://127.0.0.1:1")
	if err != nil {
		panic(err)
	}
	cloud := gen.CloudName("jwt")
	doc := gen.DeviceDocument{Cloud: &cloud, Params: &map[string]gen.ParamValue{"claims": map[string]any{"aud": "mqtt", "tier": 3}}}
	res, err := c.PutDeviceWithResponse(context.Background(), "lamp-7", &gen.PutDeviceParams{}, doc)
	fmt.Println(res, err)
	// A failure without a header of its own is the default problem.
	if res != nil && res.ApplicationproblemJSONDefault != nil {
		fmt.Println(res.ApplicationproblemJSONDefault.Status)
	}
}
`
	for name, body := range map[string][]byte{
		"go.mod":  []byte("module served\n" + rest),
		"go.sum":  sum,
		"main.go": []byte(main),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	command(t, dir, []string{"GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off"}, "go", "build", "-o", os.DevNull, ".")
}

// TestTypeScriptFromServedSpec generates TypeScript types from the served
// contract with openapi-typescript and type-checks, with tsc --strict, a
// jwt device whose claims hold members (the object branch of ParamValue
// must take them), a cloud name from the enum, and refusals of an unknown
// cloud and of a device document with a member the contract lacks, and
// the problem of a failure through an operation's default response. It
// needs npm, which installs both once (scripts/openapi-typescript.sh);
// CREDSIGN_REQUIRE_TYPESCRIPT=1 makes their absence a failure.
func TestTypeScriptFromServedSpec(t *testing.T) {
	if testing.Short() {
		t.Skip("installs and runs node tools")
	}
	root := repoRoot(t)
	out, err := exec.Command(filepath.Join(root, "scripts", "openapi-typescript.sh")).Output()
	if err != nil {
		if os.Getenv("CREDSIGN_REQUIRE_TYPESCRIPT") == "1" {
			t.Fatalf("scripts/openapi-typescript.sh: %v", err)
		}
		t.Skipf("no openapi-typescript (scripts/openapi-typescript.sh: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := filepath.Join(lines[len(lines)-1], "node_modules", ".bin")
	dir := t.TempDir()
	spec := servedSpec(t, dir)
	command(t, dir, nil, filepath.Join(bin, "openapi-typescript"), spec, "-o", filepath.Join(dir, "api.ts"))
	example := `import type { components, paths } from "./api";

type DeviceDocument = components["schemas"]["DeviceDocument"];

export const lamp: DeviceDocument = {
  cloud: "jwt",
  params: { issuer: "https://credsign.example", claims: { aud: "mqtt", tier: 3, tags: ["a"] } },
  labels: { site: "sz" },
};

// @ts-expect-error an unknown cloud is not a CloudName
export const nimbus: components["schemas"]["CloudName"] = "nimbus";

// @ts-expect-error DeviceDocument has no such member
export const extra: DeviceDocument = { cloud: "aliyun", color: "red" };

// A failure without a header of its own is the default problem.
type PutProblem = paths["/v1/devices/{id}"]["put"]["responses"]["default"]["content"]["application/problem+json"];
export const conflict: PutProblem = { type: "about:blank", title: "Conflict", status: 409 };
`
	if err := os.WriteFile(filepath.Join(dir, "example.ts"), []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	command(t, dir, nil, filepath.Join(bin, "tsc"), "--noEmit", "--strict", "--target", "es2020", "--module", "es2020", "--moduleResolution", "bundler", "example.ts", "api.ts")
}
