package azure

import (
	"testing"
)

func FuzzParseDPSOperation(f *testing.F) {
	f.Add([]byte(`{"operationId":"4.abc","status":"assigning"}`))
	f.Add([]byte(`{"operationId":"4.abc","status":"assigned","registrationState":{"assignedHub":"h.azure-devices.net","deviceId":"d","errorCode":400209}}`))
	f.Add([]byte(`{"status":"failed","registrationState":{"errorCode":"x"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := parseDPSOperation(b)
		if err == nil && op.Status == "" {
			t.Fatal("accepted an operation without a status")
		}
		if err != nil && op.Status != "" {
			t.Fatal("error with a status")
		}
	})
}
