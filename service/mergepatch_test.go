package service

import (
	"encoding/json"
	"reflect"
	"testing"
)

func decodeJSON(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

// TestMergePatch runs the examples of RFC 7396 Appendix A, then the one of
// section 3.
func TestMergePatch(t *testing.T) {
	tests := []struct{ target, patch, want string }{
		// RFC 7396 Appendix A.
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// RFC 7396 section 3.
		{`{"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},"tags":["example","sample"],"content":"This will be unchanged"}`,
			`{"title":"Hello!","phoneNumber":"+01-123-456-7890","author":{"familyName":null},"tags":["example"]}`,
			`{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}`},
	}
	for _, tc := range tests {
		t.Run(tc.target+" + "+tc.patch, func(t *testing.T) {
			target := decodeJSON(t, tc.target)
			got := MergePatch(target, decodeJSON(t, tc.patch))
			if want := decodeJSON(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Fatalf("MergePatch = %#v, want %#v", got, want)
			}
			if !reflect.DeepEqual(target, decodeJSON(t, tc.target)) {
				t.Fatalf("the target was modified: %#v", target)
			}
		})
	}
}

// FuzzMergePatch checks properties every merge patch has: the target is
// left as it was; applying a patch twice gives what applying it once gives;
// an object patch leaves no member it set to null, and every other member
// it names takes the patch's value merged.
func FuzzMergePatch(f *testing.F) {
	f.Add(`{"a":"b","c":{"d":"e"}}`, `{"a":null,"c":{"f":1}}`)
	f.Add(`[1]`, `{"x":null}`)
	f.Add(`{"labels":{"site":"sz"}}`, `{"labels":{"site":null,"row":"3"},"group":null}`)
	f.Fuzz(func(t *testing.T, targetText, patchText string) {
		var target, patch any
		if json.Unmarshal([]byte(targetText), &target) != nil || json.Unmarshal([]byte(patchText), &patch) != nil {
			return
		}
		var again any
		_ = json.Unmarshal([]byte(targetText), &again)
		once := MergePatch(target, patch)
		if !reflect.DeepEqual(target, again) {
			t.Fatal("the target was modified")
		}
		if twice := MergePatch(once, patch); !reflect.DeepEqual(once, twice) {
			t.Fatalf("not idempotent: %#v then %#v", once, twice)
		}
		p, ok := patch.(map[string]any)
		if !ok {
			if !reflect.DeepEqual(once, patch) {
				t.Fatalf("a patch that is not an object did not replace the target: %#v", once)
			}
			return
		}
		out, ok := once.(map[string]any)
		if !ok {
			t.Fatalf("an object patch gave %#v", once)
		}
		for k, v := range p {
			got, present := out[k]
			if v == nil && present {
				t.Fatalf("member %q set to null is still there", k)
			}
			if _, isObj := v.(map[string]any); v != nil && !isObj && !reflect.DeepEqual(got, v) {
				t.Fatalf("member %q = %#v, want %#v", k, got, v)
			}
		}
	})
}
