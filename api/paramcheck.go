package api

import (
	"reflect"
	"regexp"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// paramChecks are precompiled checks of an operation's parameters, read
// from the contract (newParamChecks) when every parameter is a path
// parameter in the simple style whose schema is a string with a pattern
// and nothing else that validates: of such a parameter, kin-openapi's
// ValidateParameter checks that it is there and matches the pattern, and
// nothing more. A request whose parameters all pass here would pass there,
// and skips kin-openapi's decoding and validation (FuzzParamChecks holds
// the two to the same answers); any other request is validated by
// kin-openapi as before, so a refusal is the same problem.
type paramChecks struct {
	// all: every parameter of the operation is checked here; false sends
	// every request to kin-openapi.
	all    bool
	checks []paramCheck
}

// paramCheck is the check of one path parameter: present and matching.
type paramCheck struct {
	name    string
	pattern *regexp.Regexp
}

// newParamChecks reads the checks of params (an operation's, in
// kin-openapi's order); all is false unless each fits (simpleStringParam).
func newParamChecks(params []*openapi3.Parameter) paramChecks {
	pc := paramChecks{all: true}
	for _, p := range params {
		re, ok := simpleStringParam(p)
		if !ok {
			return paramChecks{}
		}
		pc.checks = append(pc.checks, paramCheck{name: p.Name, pattern: re})
	}
	return pc
}

// simpleStringParam returns the compiled pattern of a required path
// parameter in the simple style whose schema is a string with a pattern
// (compiled as kin-openapi compiles it) and no other keyword that
// validates or supplies a value; false for any other parameter.
func simpleStringParam(p *openapi3.Parameter) (*regexp.Regexp, bool) {
	if p.In != openapi3.ParameterInPath || !p.Required || p.Content != nil || p.AllowEmptyValue ||
		(p.Style != "" && p.Style != openapi3.SerializationSimple) || (p.Explode != nil && *p.Explode) ||
		p.Schema == nil || p.Schema.Value == nil {
		return nil, false
	}
	s := p.Schema.Value
	// Only the type and pattern may be set, besides what only describes.
	rest := *s
	rest.Extensions, rest.Origin, rest.Title, rest.Description, rest.Example = nil, nil, "", "", nil
	rest.Type, rest.Pattern = nil, ""
	if !reflect.ValueOf(rest).IsZero() || !s.Type.Is(openapi3.TypeString) || s.Pattern == "" ||
		strings.Contains(s.Pattern, `\u`) { // kin-openapi rewrites \uXXXX before compiling
		return nil, false
	}
	re, err := regexp.Compile(s.Pattern)
	if err != nil {
		return nil, false
	}
	return re, true
}

// pass reports whether every parameter of the operation is checked here
// and its value (param returns it by name) passes: kin-openapi then has
// nothing to refuse.
func (pc paramChecks) pass(param func(name string) string) bool {
	if !pc.all {
		return false
	}
	for _, c := range pc.checks {
		if v := param(c.name); v == "" || !c.pattern.MatchString(v) {
			return false
		}
	}
	return true
}
