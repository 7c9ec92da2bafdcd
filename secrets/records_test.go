package secrets

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		name              string
		stored, ifVersion int64
		want              string // "" for nil, else a substring of the ErrConflict
	}{
		{"unconditional on a missing device", 0, -1, ""},
		{"unconditional on a device", 5, -1, ""},
		{"create-only on a missing device", 0, 0, ""},
		{"create-only on a device", 3, 0, "device exists"},
		{"matching version", 3, 3, ""},
		{"stale version", 4, 3, "stored version is 4, not 3"},
		{"future version", 4, 9, "stored version is 4, not 9"},
		{"version on a missing device", 0, 2, "device does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckVersion(tc.stored, tc.ifVersion)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckVersion(%d, %d) = %v, want nil", tc.stored, tc.ifVersion, err)
				}
				return
			}
			if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckVersion(%d, %d) = %v, want a conflict saying %q", tc.stored, tc.ifVersion, err, tc.want)
			}
		})
	}
}

func TestNormalizeDevice(t *testing.T) {
	in := Device{ID: "a", Cloud: "aliyun", Secret: "s",
		Params:  map[string]any{"port": 8883, "tls": true, "name": "x", "ratio": float32(0.5)},
		Labels:  map[string]string{"site": "sz"},
		Version: 7,
	}
	got, err := NormalizeDevice(in)
	if err != nil {
		t.Fatal(err)
	}
	want := Device{ID: "a", Cloud: "aliyun", Secret: "s",
		Params: map[string]any{"port": float64(8883), "tls": true, "name": "x", "ratio": float64(0.5)},
		Labels: map[string]string{"site": "sz"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("NormalizeDevice = %+v, want %+v", got, want)
	}
	got.Params["port"] = 1.0
	got.Labels["site"] = "changed"
	if in.Params["port"] != 8883 || in.Labels["site"] != "sz" {
		t.Fatal("the result shares maps with the input")
	}
	empty, err := NormalizeDevice(Device{ID: "b", Params: map[string]any{}, Labels: map[string]string{}})
	if err != nil || empty.Params != nil || empty.Labels != nil {
		t.Fatalf("empty maps: %+v, %v; want nil maps", empty, err)
	}
	_, err = NormalizeDevice(Device{ID: "c", Secret: "s3cret-x", Params: map[string]any{"n": math.Inf(1)}})
	if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "s3cret-x") {
		t.Fatalf("unencodable params: %v, want ErrInvalid without the secret", err)
	}
}
