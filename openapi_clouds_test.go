package credsign

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/credsign/credsign/cloud/clouds"
)

// TestOpenAPIHeldToRegistry: what openapi.yaml says of the clouds is what
// the registry (cloud/clouds) has: every cloud name fits CloudName, the
// registration kinds are GroupRegistration.kind's enum, and the clouds the
// doctor diagnoses are those doctorDevice lists. A cloud added to the
// list, or a kind to a cloud, fails here until the contract says so.
func TestOpenAPIHeldToRegistry(t *testing.T) {
	doc := loadSpec(t)
	reg := clouds.Registry()
	schemas := doc.Components.Schemas

	name := regexp.MustCompile(schemas["CloudName"].Value.Pattern)
	for _, n := range reg.Names() {
		if !name.MatchString(n) {
			t.Errorf("cloud %q does not fit CloudName's pattern %s", n, name)
		}
	}

	var kinds []string
	for _, v := range schemas["GroupRegistration"].Value.Properties["kind"].Value.Enum {
		kinds = append(kinds, v.(string))
	}
	slices.Sort(kinds)
	if want := reg.RegistrationKinds().Names(); !slices.Equal(kinds, want) {
		t.Errorf("GroupRegistration.kind enum %v, the registry's kinds %v", kinds, want)
	}

	var desc string
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.OperationID == "doctorDevice" {
				desc = op.Description
			}
		}
	}
	_, listed, ok := strings.Cut(strings.Join(strings.Fields(desc), " "), "Diagnosed clouds: ")
	listed, _, _ = strings.Cut(listed, ";")
	if want := strings.Join(reg.DoctorClouds(), ", "); !ok || listed != want {
		t.Errorf("doctorDevice lists the clouds %q, the registry diagnoses %q", listed, want)
	}
}
