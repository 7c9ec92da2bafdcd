package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
)

// planeServers serves each plane of one Server on its own test listener.
func planeServers(t *testing.T) (srv *Server, urls map[Plane]string) {
	t.Helper()
	e := newEnv(t, nil)
	srv, err := newServer(service.Config{Store: e.store, AdminToken: testAdmin}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	urls = map[Plane]string{}
	for _, p := range []Plane{PlaneDevice, PlaneAdmin, PlaneAll} {
		ts := httptest.NewServer(srv.Handler(p))
		t.Cleanup(ts.Close)
		urls[p] = ts.URL
	}
	return srv, urls
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// noSuchEndpoint reports whether a response is the 404 of a path that
// does not exist (as opposed to the 404 of a record that does not).
func noSuchEndpoint(t *testing.T, res *http.Response) bool {
	t.Helper()
	if res.StatusCode != http.StatusNotFound {
		return false
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("404 with Content-Type %q, want problem JSON", ct)
	}
	var p struct{ Detail string }
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Errorf("404 body: %v", err)
	}
	return p.Detail == "no such endpoint"
}

// TestPlanesServeTheirOperationsOnly sends every operation of openapi.yaml
// to each plane, with the admin token and with none, and checks that the
// plane it is not on answers it as a path that does not exist (before
// authentication: nothing is learnt about tokens there), and that the
// planes it is on route it. The list comes from the contract, so a new
// operation is checked without a word here.
func TestPlanesServeTheirOperationsOnly(t *testing.T) {
	srv, urls := planeServers(t)
	if len(srv.ops) < 20 {
		t.Fatalf("only %d operations", len(srv.ops))
	}
	for key, op := range srv.ops {
		method, tmpl, _ := strings.Cut(key, " ")
		path := pathParam.ReplaceAllString(tmpl, "p1")
		methods := []string{method}
		if method == http.MethodGet {
			methods = append(methods, http.MethodHead)
		}
		for _, p := range []Plane{PlaneDevice, PlaneAdmin, PlaneAll} {
			for _, m := range methods {
				for _, token := range []string{testAdmin, ""} {
					req, _ := http.NewRequest(m, urls[p]+path, nil)
					if token != "" {
						req.Header.Set("Authorization", "Bearer "+token)
					}
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					want := !op.planes.has(p)
					var gone bool
					if m == http.MethodHead {
						// No body to tell the two 404s apart: the GET above did.
						gone = res.StatusCode == http.StatusNotFound
						if !want {
							res.Body.Close()
							continue
						}
					} else {
						gone = noSuchEndpoint(t, res)
					}
					res.Body.Close()
					if gone != want {
						t.Errorf("%s %s (%s) on the %s plane, token %t: status %d, served %t, want served %t",
							m, path, op.route.Operation.OperationID, p, token != "", res.StatusCode, !gone, !want)
					}
				}
			}
		}
	}
}

// TestPlanesOfRoles holds the planes to the rule: what a device or an
// enrolment token may call is on the device plane; what only admin and
// provisioner tokens may call is not; every operation is on some plane;
// the contract, the docs page and the metrics are admin plane only.
func TestPlanesOfRoles(t *testing.T) {
	ops, err := specOperations()
	if err != nil {
		t.Fatal(err)
	}
	for key, op := range ops {
		id := op.route.Operation.OperationID
		deviceRole := slices.Contains(op.roles, secrets.RoleDevice) || slices.Contains(op.roles, service.RoleEnrolment)
		staffRole := slices.Contains(op.roles, service.RoleAdmin) || slices.Contains(op.roles, secrets.RoleProvisioner)
		switch {
		case !op.planes.device && !op.planes.admin:
			t.Errorf("%s (%s) is on no plane", key, id)
		case deviceRole && !op.planes.device:
			t.Errorf("%s (%s): a device calls it, but it is not on the device plane", key, id)
		case op.roles != nil && !deviceRole && op.planes.device:
			t.Errorf("%s (%s): only staff call it, but it is on the device plane", key, id)
		case staffRole && !op.planes.admin:
			t.Errorf("%s (%s): staff call it, but it is not on the admin plane", key, id)
		}
	}
	for key, want := range map[string]planeSet{
		"GET /openapi.yaml":          {admin: true},
		"GET /docs":                  {admin: true},
		"GET /healthz":               {device: true, admin: true},
		"GET /readyz":                {device: true, admin: true},
		"GET /.well-known/jwks.json": {device: true},
		"POST /v1/enrol":             {device: true},
		"GET /v1/devices":            {admin: true},
	} {
		if got := ops[key].planes; got != want {
			t.Errorf("%s: planes %+v, want %+v", key, got, want)
		}
	}
	_, urls := planeServers(t)
	for p, want := range map[Plane]int{PlaneDevice: 404, PlaneAdmin: 200, PlaneAll: 200} {
		res, err := http.Get(urls[p] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != want || (want == 404 && !noSuchEndpoint(t, res)) {
			t.Errorf("/metrics on the %s plane: %d, want %d", p, res.StatusCode, want)
		}
		res.Body.Close()
	}
}

// TestPlaneMethodNotAllowed: a 405 lists only the methods of the plane,
// and a path whose every method is on the other plane is a 404.
func TestPlaneMethodNotAllowed(t *testing.T) {
	_, urls := planeServers(t)
	for _, c := range []struct {
		plane        Plane
		method, path string
		status       int
		allow        string
	}{
		{PlaneDevice, "GET", "/v1/devices/p1/credentials", 405, "POST"},
		{PlaneDevice, "GET", "/v1/enrol", 405, "POST"},
		{PlaneAdmin, "GET", "/v1/enrol", 404, ""},
		{PlaneDevice, "POST", "/v1/devices/p1", 404, ""},
		{PlaneAdmin, "POST", "/v1/devices/p1", 405, "GET, HEAD, PUT, PATCH, DELETE"},
		{PlaneAll, "POST", "/v1/tokens/p1", 405, "DELETE"},
		{PlaneDevice, "POST", "/v1/tokens/p1", 404, ""},
	} {
		req, _ := http.NewRequest(c.method, urls[c.plane]+c.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status || res.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s on the %s plane: %d Allow %q, want %d %q", c.method, c.path, c.plane, res.StatusCode, res.Header.Get("Allow"), c.status, c.allow)
		}
	}
}

// TestOperationPlanes: a public operation must name its planes; a plane
// must be known.
func TestOperationPlanes(t *testing.T) {
	for _, c := range []struct {
		name  string
		ext   any
		roles []string
		want  planeSet
		err   string
	}{
		{"public without", nil, nil, planeSet{}, "has no x-credsign-plane"},
		{"public device", []any{"device"}, nil, planeSet{device: true}, ""},
		{"both", []any{"device", "admin"}, nil, planeSet{device: true, admin: true}, ""},
		{"unknown", []any{"internet"}, nil, planeSet{}, "unknown plane"},
		{"not a list", "device", nil, planeSet{}, "not a list"},
		{"empty", []any{}, nil, planeSet{}, "not a list"},
		{"device role", nil, []string{"device"}, planeSet{device: true}, ""},
		{"enrolment role", nil, []string{"enrolment"}, planeSet{device: true}, ""},
		{"staff and device", nil, []string{"admin", "provisioner", "device"}, planeSet{device: true, admin: true}, ""},
		{"staff", nil, []string{"provisioner"}, planeSet{admin: true}, ""},
		{"explicit wins", []any{"admin"}, []string{"device"}, planeSet{admin: true}, ""},
	} {
		op := &openapi3.Operation{OperationID: "op", Extensions: map[string]any{}}
		if c.ext != nil {
			op.Extensions[planeExtension] = c.ext
		}
		got, err := operationPlanes(op, c.roles)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}
