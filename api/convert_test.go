package api

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/credsign/credsign/cloud"
)

// TestAPITopicsKeepsEveryTopic: the converter from the cloud core's
// topics to the contract's loses none (every field set to its own value
// comes out in the same JSON member), so a topic added to cloud.Topics
// and not to openapi.yaml or apiTopics fails here.
func TestAPITopicsKeepsEveryTopic(t *testing.T) {
	var in cloud.Topics
	v := reflect.ValueOf(&in).Elem()
	for i := range v.NumField() {
		v.Field(i).SetString("topic/" + v.Type().Field(i).Name)
	}
	want, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(apiTopics(in, new([14]string)))
	if err != nil {
		t.Fatal(err)
	}
	var w, g map[string]string
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w, g) {
		t.Errorf("apiTopics(%s) = %s", want, got)
	}
	// Empty optional topics stay absent.
	got, _ = json.Marshal(apiTopics(cloud.Topics{Telemetry: "t", Commands: "c"}, new([14]string)))
	if string(got) != `{"commands":"c","telemetry":"t"}` {
		t.Errorf("minimal topics: %s", got)
	}
}
