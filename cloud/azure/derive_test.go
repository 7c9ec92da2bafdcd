package azure

import (
	"strings"
	"testing"
)

func TestDeriveGroupKey(t *testing.T) {
	const groupKey = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	tests := []struct {
		name, key, regID, want, wantErr string
	}{
		// Vector: Microsoft Learn, "How to use symmetric keys with group
		// enrollments" (azure/iot-dps/how-to-legacy-device-symm-key), the
		// derived key for registration id sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6
		// (docs/clouds.md, "Registration").
		{name: "microsoft learn vector", key: groupKey, regID: "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", want: "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="},
		{name: "key not base64", key: "not base64!", regID: "d1", wantErr: "standard base64"},
		{name: "empty key", key: "", regID: "d1", wantErr: "non-empty"},
		{name: "empty registration id", key: groupKey, regID: "", wantErr: "empty registration id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeriveGroupKey(tt.key, tt.regID)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if tt.key != "" && strings.Contains(err.Error(), tt.key) {
					t.Fatalf("error leaks the key: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DeriveGroupKey = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// Another registration id gives another key.
	a, _ := DeriveGroupKey(groupKey, "dev-a")
	b, _ := DeriveGroupKey(groupKey, "dev-b")
	if a == b {
		t.Fatal("two registration ids derived the same key")
	}
}
