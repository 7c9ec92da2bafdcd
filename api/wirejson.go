package api

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// wireEncoder writes values of one generated wire type exactly as
// encoding/json's Encoder does with HTML escaping off: the same members in
// the same order, the same escapes, a newline at the end. Its plan is read
// once from the type's fields and json tags (newWireEncoder), so what
// encoding/json spends on each value (reflection over the type, boxing,
// time.Time's MarshalJSON and the compaction of what it returns) is not
// spent on the warm issuance path. It knows the kinds the contract's
// response types use; newWireEncoder refuses a type with any other.
type wireEncoder struct {
	fields []wireField
}

// wireField is one member of a wireEncoder's type.
type wireField struct {
	index int
	// key is the member's name as JSON with its colon: "name":
	key       []byte
	kind      wireKind
	omitEmpty bool
	// sub is the plan of a nested struct (kind wireStruct).
	sub *wireEncoder
}

// wireKind is how a field's value is written.
type wireKind int

const (
	wireString wireKind = iota
	wireStringPtr
	wireBool
	wireInt
	wireTime
	wireTimePtr
	wireStruct
)

var (
	timeType          = reflect.TypeFor[time.Time]()
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// newWireEncoder reads the plan of struct type t, or says which of its
// fields encoding/json would write in a way the plan does not know
// (embedded fields, tag options other than omitempty, marshalers other
// than time.Time's, kinds other than strings, booleans, integers, times,
// pointers to strings or times, and such structs).
func newWireEncoder(t reflect.Type) (*wireEncoder, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct", t)
	}
	enc := &wireEncoder{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil, fmt.Errorf("%s.%s: embedded fields are not supported", t, sf.Name)
		}
		tag := sf.Tag.Get("json")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts != "" && opts != "omitempty" {
			return nil, fmt.Errorf("%s.%s: json option %q is not supported", t, sf.Name, opts)
		}
		if name == "" {
			name = sf.Name
		}
		f := wireField{index: i, key: append(appendJSONString(nil, name), ':'), omitEmpty: opts == "omitempty"}
		var err error
		if f.kind, f.sub, err = wireKindOf(sf.Type); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t, sf.Name, err)
		}
		enc.fields = append(enc.fields, f)
	}
	return enc, nil
}

// wireKindOf says how a field of type t is written (with the plan of a
// nested struct).
func wireKindOf(t reflect.Type) (wireKind, *wireEncoder, error) {
	switch {
	case t == timeType:
		return wireTime, nil, nil
	case t.Kind() == reflect.Pointer && t.Elem() == timeType:
		return wireTimePtr, nil, nil
	case hasMarshaler(t):
		return 0, nil, fmt.Errorf("%s has a marshaler of its own", t)
	}
	switch t.Kind() {
	case reflect.String:
		return wireString, nil, nil
	case reflect.Bool:
		return wireBool, nil, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return wireInt, nil, nil
	case reflect.Pointer:
		if e := t.Elem(); e.Kind() == reflect.String && !hasMarshaler(e) {
			return wireStringPtr, nil, nil
		}
	case reflect.Struct:
		sub, err := newWireEncoder(t)
		return wireStruct, sub, err
	}
	return 0, nil, fmt.Errorf("type %s is not supported", t)
}

// hasMarshaler reports whether encoding/json writes a value of type t
// with its own (or its pointer's) MarshalJSON or MarshalText.
func hasMarshaler(t reflect.Type) bool {
	for _, m := range []reflect.Type{marshalerType, textMarshalerType} {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			return true
		}
	}
	return false
}

// appendLine appends v (a pointer to a value of the plan's type) and a
// newline to dst, as json.Encoder with SetEscapeHTML(false) writes it.
// False when a time is one encoding/json refuses to write (a year outside
// 0-9999, an offset of 24 hours or more): the caller then asks
// encoding/json, for the same answer.
func (enc *wireEncoder) appendLine(dst []byte, v any) ([]byte, bool) {
	dst, ok := enc.appendValue(dst, reflect.ValueOf(v).Elem())
	return append(dst, '\n'), ok
}

// appendValue appends the object of struct value v (addressable).
func (enc *wireEncoder) appendValue(dst []byte, v reflect.Value) ([]byte, bool) {
	sep := byte('{')
	for i := range enc.fields {
		f := &enc.fields[i]
		fv := v.Field(f.index)
		if f.omitEmpty && fv.IsZero() && f.kind != wireStruct && f.kind != wireTime {
			// encoding/json's omitempty leaves out "", false, 0 and nil,
			// never a struct.
			continue
		}
		dst = append(append(dst, sep), f.key...)
		sep = ','
		var ok bool
		if dst, ok = f.appendValue(dst, fv); !ok {
			return dst, false
		}
	}
	if sep == '{' {
		dst = append(dst, '{')
	}
	return append(dst, '}'), true
}

// appendValue appends the value of field f, fv.
func (f *wireField) appendValue(dst []byte, fv reflect.Value) ([]byte, bool) {
	switch f.kind {
	case wireString:
		return appendJSONString(dst, fv.String()), true
	case wireStringPtr:
		if fv.IsNil() {
			return append(dst, "null"...), true
		}
		return appendJSONString(dst, fv.Elem().String()), true
	case wireBool:
		return strconv.AppendBool(dst, fv.Bool()), true
	case wireInt:
		return strconv.AppendInt(dst, fv.Int(), 10), true
	case wireTime:
		return appendJSONTime(dst, fv.Addr().Interface().(*time.Time))
	case wireTimePtr:
		if fv.IsNil() {
			return append(dst, "null"...), true
		}
		return appendJSONTime(dst, fv.Interface().(*time.Time))
	}
	return f.sub.appendValue(dst, fv)
}

// appendJSONTime appends t as time.Time's MarshalJSON writes it; false
// where MarshalJSON fails (its checks, on the same RFC 3339 text).
func appendJSONTime(dst []byte, t *time.Time) ([]byte, bool) {
	dst = append(dst, '"')
	n0 := len(dst)
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	s := dst[n0:]
	num2 := func(b []byte) byte { return 10*(b[0]-'0') + (b[1] - '0') }
	switch {
	case s[len("9999")] != '-': // a year of exactly four digits
		return dst, false
	case s[len(s)-1] != 'Z':
		if c := s[len(s)-len("Z07:00")]; ('0' <= c && c <= '9') || num2(s[len(s)-len("07:00"):]) >= 24 {
			return dst, false
		}
	}
	return append(dst, '"'), true
}

// jsonHex are the digits of encoding/json's \u escapes.
const jsonHex = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does with HTML
// escaping off: '"', '\\' and control characters escaped (\b, \f, \n, \r,
// \t by name, the others as \u00XX), bytes that are not UTF-8 as \ufffd,
// U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', jsonHex[b>>4], jsonHex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(append(dst, s[start:i]...), `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(append(dst, s[start:i]...), '\\', 'u', '2', '0', '2', jsonHex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(dst, s[start:]...), '"')
}

// mustWireEncoder is newWireEncoder for a type of the contract known to
// fit the plan (a test builds each); it panics otherwise.
func mustWireEncoder(t reflect.Type) *wireEncoder {
	enc, err := newWireEncoder(t)
	if err != nil {
		panic("api: " + err.Error())
	}
	return enc
}
