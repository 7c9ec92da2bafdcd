package credsign

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/credsign/credsign/cloud/clouds"
)

// TestOpenAPIHeldToRegistry: what openapi.yaml says of the clouds is what
// the registry (cloud/clouds) has: CloudName's enum is the registry's
// clouds, info.description names each of them, the
// registration kinds are GroupRegistration.kind's enum, and the clouds the
// doctor diagnoses are those doctorDevice lists. A cloud added to the
// list, or a kind to a cloud, fails here until the contract says so.
func TestOpenAPIHeldToRegistry(t *testing.T) {
	doc := loadSpec(t)
	reg := clouds.Registry()
	schemas := doc.Components.Schemas

	var names []string
	for _, v := range schemas["CloudName"].Value.Enum {
		names = append(names, v.(string))
	}
	if want := reg.Names(); !slices.Equal(names, want) {
		t.Errorf("CloudName enum %v, the registry's clouds %v (sorted)", names, want)
	}
	// info.description names every cloud, with its title, and how many.
	info := strings.Join(strings.Fields(doc.Info.Description), " ")
	for _, c := range reg.Clouds() {
		if !strings.Contains(info, "(`"+c.Name+"`)") {
			t.Errorf("info.description does not name the cloud `%s` (%s)", c.Name, c.Title)
		}
	}
	if n := len(regexp.MustCompile("\\(`[a-z0-9]+`\\)").FindAllString(info, -1)); n != len(reg.Names()) {
		t.Errorf("info.description names %d clouds, the registry has %d", n, len(reg.Names()))
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
