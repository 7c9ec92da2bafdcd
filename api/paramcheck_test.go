package api

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
)

// kinAccepts is kin-openapi's answer for the parameters of op: true when
// ValidateParameter refuses none.
func kinAccepts(t *testing.T, op *operation, pathParams map[string]string) bool {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	input := &openapi3filter.RequestValidationInput{Request: r, PathParams: pathParams, Route: op.route, Options: &validationOptions}
	for _, p := range op.params {
		if openapi3filter.ValidateParameter(r.Context(), input, p) != nil {
			return false
		}
	}
	return true
}

// loadedOperations are the contract's operations, read once for the fuzz
// test's many runs.
var loadedOperations = sync.OnceValues(specOperations)

// checkedOperations are the operations of the contract whose parameters
// all have precompiled checks.
func checkedOperations(t *testing.T) map[string]*operation {
	t.Helper()
	ops, err := loadedOperations()
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]*operation{}
	for key, op := range ops {
		if op.paramChecks.all {
			checked[key] = op
		}
	}
	return checked
}

// paramValues are path parameter values, good and bad, for the table test
// and the fuzz test's seeds.
var paramValues = []string{
	"lamp-7", "a", "A.b_c:d-e", strings.Repeat("x", 128), strings.Repeat("x", 129), "", "-lead", ".", "..",
	"a/b", "a%2Fb", "a b", "lamp-7\n", "\nlamp", "日本", "a\x00", "abc$", "0123456789abcdef01234567",
	"csd_2.x", "ABCdef", "a,b", ";a=b", ".a",
}

// TestParamChecksAgreeWithKin: on every operation whose parameters are
// checked here, a value passes the precompiled checks exactly when
// kin-openapi accepts it (a refused one is then refused by kin-openapi,
// with its problem); and the warm issuance's operation is one of them.
func TestParamChecksAgreeWithKin(t *testing.T) {
	checked := checkedOperations(t)
	if op := checked["POST /v1/devices/{id}/credentials"]; op == nil || !op.issues {
		t.Fatal("the issue operation's parameters have no precompiled checks")
	}
	for key, op := range checked {
		for _, v := range paramValues {
			params := map[string]string{}
			for _, c := range op.paramChecks.checks {
				params[c.name] = v
			}
			if got, want := op.paramChecks.pass(func(n string) string { return params[n] }), kinAccepts(t, op, params); got != want {
				t.Errorf("%s with %q: the checks say %v, kin-openapi %v", key, v, got, want)
			}
		}
	}
}

// TestParamChecksRefuseWhatTheyDoNotKnow: parameters other than simple
// path strings with a pattern get no precompiled checks.
func TestParamChecksRefuseWhatTheyDoNotKnow(t *testing.T) {
	ops, err := specOperations()
	if err != nil {
		t.Fatal(err)
	}
	for key, op := range ops {
		for _, p := range op.params {
			if p.In != "path" && op.paramChecks.all {
				t.Errorf("%s: %s parameter %s has a precompiled check", key, p.In, p.Name)
			}
		}
	}
	if op := ops["GET /v1/devices"]; op == nil || op.paramChecks.all {
		t.Error("GET /v1/devices (query parameters) has precompiled checks")
	}
}

// FuzzParamChecks holds the precompiled checks to kin-openapi on every
// checked operation: the same answer for any value of each parameter.
func FuzzParamChecks(f *testing.F) {
	for _, v := range paramValues {
		f.Add(v, v)
	}
	f.Fuzz(func(t *testing.T, first, other string) {
		for key, op := range checkedOperations(t) {
			params := map[string]string{}
			for i, c := range op.paramChecks.checks {
				params[c.name] = other
				if i == 0 {
					params[c.name] = first
				}
			}
			if got, want := op.paramChecks.pass(func(n string) string { return params[n] }), kinAccepts(t, op, params); got != want {
				t.Fatalf("%s with %q: the checks say %v, kin-openapi %v", key, params, got, want)
			}
		}
	})
}
