package service

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/credsign/credsign/secrets"
)

func TestScopeHasDevice(t *testing.T) {
	groups := &secrets.Scope{Groups: []string{"a", "c"}}
	labels := &secrets.Scope{Labels: map[string]string{"site": "sz", "empty": ""}}
	both := &secrets.Scope{Groups: []string{"a"}, Labels: map[string]string{"site": "sz"}}
	dev := func(group string, labels map[string]string) secrets.Device {
		return secrets.Device{ID: "d", Group: group, Labels: labels}
	}
	cases := []struct {
		name string
		sc   *secrets.Scope
		d    secrets.Device
		want bool
	}{
		{"unscoped", nil, dev("", nil), true},
		{"listed group", groups, dev("c", nil), true},
		{"other group", groups, dev("b", nil), false},
		{"no group, groups scope", groups, dev("", nil), false},
		{"group sorting before the list", groups, dev("0", nil), false},
		{"group sorting after the list", groups, dev("z", nil), false},
		{"all labels", labels, dev("", map[string]string{"site": "sz", "empty": "", "x": "y"}), true},
		{"a label missing", labels, dev("any", map[string]string{"site": "sz"}), false},
		{"a label with another value", labels, dev("any", map[string]string{"site": "bj", "empty": ""}), false},
		{"both", both, dev("a", map[string]string{"site": "sz"}), true},
		{"both, label wrong", both, dev("a", map[string]string{"site": "bj"}), false},
		{"both, group wrong", both, dev("b", map[string]string{"site": "sz"}), false},
	}
	for _, c := range cases {
		if got := c.sc.HasDevice(c.d); got != c.want {
			t.Errorf("%s: scopeHasDevice = %v, want %v", c.name, got, c.want)
		}
		g := secrets.Group{ID: c.d.Group, Labels: c.d.Labels}
		if c.d.Group == "" {
			continue
		}
		if got := c.sc.HasGroup(g); got != c.want {
			t.Errorf("%s: scopeHasGroup = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCheckScope(t *testing.T) {
	many := make([]string, MaxScopeGroups+1)
	for i := range many {
		many[i] = "g" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	cases := []struct {
		name   string
		in     *secrets.Scope
		want   *secrets.Scope
		fields []string
	}{
		{"none", nil, nil, nil},
		{"sorted, unique", &secrets.Scope{Groups: []string{"b", "a", "b"}}, &secrets.Scope{Groups: []string{"a", "b"}}, nil},
		{"labels", &secrets.Scope{Labels: map[string]string{"site": "sz"}}, &secrets.Scope{Labels: map[string]string{"site": "sz"}}, nil},
		{"empty", &secrets.Scope{}, nil, []string{"scope"}},
		{"bad group", &secrets.Scope{Groups: []string{"a b"}}, nil, []string{"scope.groups"}},
		{"too many groups", &secrets.Scope{Groups: many}, nil, []string{"scope.groups"}},
		{"bad label key", &secrets.Scope{Labels: map[string]string{"-x": "y"}}, nil, []string{"scope.labels"}},
		{"control in a value", &secrets.Scope{Labels: map[string]string{"x": "y\n"}}, nil, []string{"scope.labels.x"}},
	}
	for _, c := range cases {
		got, err := CheckScope(c.in)
		var se *Error
		switch {
		case c.fields == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.fields == nil && !reflect.DeepEqual(got, c.want):
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		case c.fields != nil && (!errors.As(err, &se) || se.Code != CodeInvalid):
			t.Errorf("%s: error %v, want CodeInvalid", c.name, err)
		case c.fields != nil:
			var names []string
			for _, f := range se.Fields {
				names = append(names, f.Field)
			}
			if !reflect.DeepEqual(names, c.fields) {
				t.Errorf("%s: fields %v, want %v", c.name, names, c.fields)
			}
		}
	}
	in := &secrets.Scope{Groups: []string{"b", "a"}, Labels: map[string]string{"k": "v"}}
	out, _ := CheckScope(in)
	out.Labels["k"] = "changed"
	if in.Labels["k"] != "v" || in.Groups[0] != "b" {
		t.Errorf("CheckScope changed or shares its input: %+v", in)
	}
}

// TestScopedImport: on both write paths, with and without tokens, a scoped
// caller's import writes the lines inside its scope, refuses the lines
// that would land outside (CodeInvalid) and a device that exists outside
// (CodeNotFound, in every mode), and leaves that device as it was.
func TestScopedImport(t *testing.T) {
	ctx := context.Background()
	scoped := Principal{TokenID: "scoped", Role: secrets.RoleProvisioner, Scope: &secrets.Scope{Labels: map[string]string{"site": "sz"}}}
	labelled := func(site string) Document {
		d := azure("c2VjcmV0LWtleS0xMjM0NTY3ODkw")
		d.Labels = map[string]string{"site": site}
		return d
	}
	for _, bulk := range []bool{true, false} {
		for _, mode := range []ImportMode{ImportCreate, ImportUpsert, ImportResume} {
			t.Run(fmt.Sprintf("bulk=%v/mode=%d", bulk, mode), func(t *testing.T) {
				s := newImportService(t, bulk)
				for _, it := range []ImportItem{{"in", labelled("sz")}, {"out", labelled("bj")}} {
					if r := s.ImportDevices(ctx, adminCaller, []ImportItem{it}, ImportCreate, false); r[0].Err != nil {
						t.Fatal(r[0].Err)
					}
				}
				res := s.ImportDevices(ctx, scoped, []ImportItem{
					{"new", labelled("sz")}, {"new-out", labelled("bj")}, {"out", labelled("sz")}, {"in", labelled("sz")},
				}, mode, true)
				var se *Error
				if res[0].Err != nil || res[0].Token == nil {
					t.Errorf("a line inside: %+v", res[0])
				}
				if !errors.As(res[1].Err, &se) || se.Code != CodeInvalid || res[1].Token != nil {
					t.Errorf("a line landing outside: %+v", res[1])
				}
				if !errors.Is(res[2].Err, secrets.ErrNotFound) || res[2].Token != nil {
					t.Errorf("a line over a device outside: %+v", res[2])
				}
				if mode == ImportUpsert && res[3].Err != nil {
					t.Errorf("an upsert of a device inside: %+v", res[3])
				}
				if d, err := s.GetDevice(ctx, "out"); err != nil || d.Version != 1 || d.Labels["site"] != "bj" {
					t.Errorf("the device outside after the import: %+v, %v", d, err)
				}
				if _, err := s.GetDevice(ctx, "new-out"); !errors.Is(err, secrets.ErrNotFound) {
					t.Errorf("new-out was written: %v", err)
				}
			})
		}
	}
}
