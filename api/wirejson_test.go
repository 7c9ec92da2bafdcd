package api

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/api/oapi"
)

// encodingJSON is what the body was before wireEncoder: a
// json.Encoder with HTML escaping off.
func encodingJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return buf.Bytes(), err
}

// fillWire sets every field of the struct v (addressable), nested ones
// included, from the pools: the i-th string field to strs[i%len], the
// i-th pointer set or nil by bit i of present, times from times, integers
// and booleans from n. Every field of a new version of the contract's type
// is then set too, so a plan that missed one would differ.
func fillWire(v reflect.Value, strs []string, times []time.Time, present uint64, n int64) {
	i := 0
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for f := range v.NumField() {
			fv := v.Field(f)
			i++
			switch k := fv.Kind(); {
			case fv.Type() == timeType:
				fv.Set(reflect.ValueOf(times[i%len(times)]))
			case k == reflect.Pointer:
				if present&(1<<(i%64)) == 0 {
					fv.SetZero()
					continue
				}
				p := reflect.New(fv.Type().Elem())
				if p.Elem().Type() == timeType {
					p.Elem().Set(reflect.ValueOf(times[(i+1)%len(times)]))
				} else {
					p.Elem().SetString(strs[i%len(strs)])
				}
				fv.Set(p)
			case k == reflect.String:
				fv.SetString(strs[i%len(strs)])
			case k == reflect.Bool:
				fv.SetBool((n>>(i%63))&1 == 1)
			case k >= reflect.Int && k <= reflect.Int64:
				fv.SetInt(n * int64(i))
			case k == reflect.Struct:
				walk(fv)
			}
		}
	}
	walk(v)
}

// checkWire compares the wire encoder's bytes for c with encoding/json's,
// and a refusal (ok false) with encoding/json's error.
func checkWire(t *testing.T, c *oapi.Credentials) {
	t.Helper()
	want, err := encodingJSON(c)
	got, ok := credentialsWire.appendLine(nil, c)
	if !ok {
		if err == nil {
			t.Fatalf("the wire encoder refused what encoding/json writes: %s", want)
		}
		return
	}
	if err != nil {
		t.Fatalf("encoding/json fails (%v), the wire encoder wrote %s", err, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("wire encoder:\n%s\nencoding/json:\n%s", got, want)
	}
}

// wireStrings are texts with every class of character encoding/json
// escapes, or does not.
var wireStrings = []string{
	"", "lamp-7", "a&b<c>d", `quote " back \ slash`, "\b\f\n\r\t\x00\x01\x1f\x7f",
	"\u2028\u2029", "日本語 ✓ 😀", "bad \xff utf8 \xc3", "\xed\xa0\x80", "trail \xe2\x80",
	"/slash/ and +plus=", strings.Repeat("x", 300),
}

// wireTimes are times in several zones, with and without fractions, and
// ones that encoding/json refuses to write.
var wireTimes = []time.Time{
	{}, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	time.Date(1970, 1, 1, 0, 0, 0, 789000000, time.UTC),
	time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CST", 8*3600)),
	time.Date(2026, 1, 2, 3, 4, 5, 100, time.FixedZone("odd", -(3*3600+30*60+15))),
	time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 24*3600)),
	time.Unix(1_800_000_000, 0).In(time.Local),
}

// TestWireEncoderMatchesEncodingJSON holds the body of an issue to what
// encoding/json writes, byte for byte: every field of the generated type
// set (so that one the plan missed would show), texts with every escape,
// times in zones and out of encoding/json's range, optional members there
// and absent.
func TestWireEncoderMatchesEncodingJSON(t *testing.T) {
	checkWire(t, &oapi.Credentials{})
	for i, s := range wireStrings {
		for j := range wireTimes {
			for _, present := range []uint64{0, math.MaxUint64, 0x5555555555555555} {
				var c oapi.Credentials
				strs := append([]string{s}, wireStrings[(i+1)%len(wireStrings)])
				fillWire(reflect.ValueOf(&c).Elem(), strs, wireTimes[j:j+1], present, int64(i*j)-5)
				checkWire(t, &c)
			}
		}
	}
}

// FuzzWireEncoder holds the wire encoder to encoding/json on credentials
// filled from the fuzzer's texts, times and integers.
func FuzzWireEncoder(f *testing.F) {
	f.Add("lamp-7", "a&b\u2028", int64(1_800_000_000), int64(5), 0, uint64(math.MaxUint64), int64(8883))
	f.Add("\xff\x00\"", "\\", int64(-62135596801), int64(0), 24*3600, uint64(0), int64(-1))
	f.Add("", "日本", int64(253402300800), int64(999999999), -3600, uint64(0xaa), int64(0))
	f.Fuzz(func(t *testing.T, s1, s2 string, sec, nsec int64, offset int, present uint64, n int64) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("z", offset))
		var c oapi.Credentials
		fillWire(reflect.ValueOf(&c).Elem(), []string{s1, s2}, []time.Time{tm, tm.UTC()}, present, n)
		checkWire(t, &c)
	})
}

// TestNewWireEncoderRefuses: a type whose fields encoding/json would write
// in a way the plan does not know gets no plan.
func TestNewWireEncoderRefuses(t *testing.T) {
	type inner struct{ F float64 }
	type embedded struct{ A string }
	for name, v := range map[string]any{
		"not a struct": "text",
		"float":        struct{ F float64 }{},
		"nested float": struct{ I inner }{},
		"slice":        struct{ S []string }{},
		"map":          struct{ M map[string]string }{},
		"string option": struct {
			N int `json:"n,string"`
		}{},
		"omitzero": struct {
			N int `json:"n,omitzero"`
		}{},
		"embedded":       struct{ embedded }{},
		"marshaler":      struct{ R json.RawMessage }{},
		"text marshaler": struct{ D *time.Location }{},
		"pointer to int": struct{ P *int }{},
	} {
		if _, err := newWireEncoder(reflect.TypeOf(v)); err == nil {
			t.Errorf("%s: a plan was made", name)
		}
	}
}

// TestWireEncoderTags: names from tags, fields without tags, ones left out
// by "-" or unexported, empty objects, as encoding/json does.
func TestWireEncoderTags(t *testing.T) {
	type empty struct{}
	type sample struct {
		Named    string `json:"renamed"`
		Untagged int
		Skipped  string `json:"-"`
		hidden   string
		Empty    empty `json:"empty,omitempty"`
		Opt      *string
		OptOmit  *string `json:"optOmit,omitempty"`
		Flag     bool    `json:"flag,omitempty"`
		When     time.Time
		Zero     time.Time `json:"zero,omitempty"`
	}
	enc, err := newWireEncoder(reflect.TypeFor[sample]())
	if err != nil {
		t.Fatal(err)
	}
	v := sample{Named: "n", Untagged: 3, Skipped: "s", hidden: "h"}
	want, _ := encodingJSON(&v)
	if got, ok := enc.appendLine(nil, &v); !ok || !bytes.Equal(got, want) {
		t.Fatalf("got %s (%v), want %s", got, ok, want)
	}
}

// BenchmarkCredentialsJSON compares the wire encoder with encoding/json on
// an issue's body.
func BenchmarkCredentialsJSON(b *testing.B) {
	var c oapi.Credentials
	fillWire(reflect.ValueOf(&c).Elem(), []string{"a1B2c3D4e5F.lamp-7", "hmacsha256&timestamp=1"}, wireTimes[1:2], 0x3, 8883)
	buf := make([]byte, 0, 2048)
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = credentialsWire.appendLine(buf[:0], &c)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodingJSON(&c)
		}
	})
}
