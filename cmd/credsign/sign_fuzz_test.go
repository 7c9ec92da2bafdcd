package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzSignInput feeds arbitrary --now, --ttl, --param and --device input to
// the sign command's parsing: it must never panic, bad input must be a usage
// error (exit 2), and no message may quote the device document's secret.
func FuzzSignInput(f *testing.F) {
	f.Add("1970-01-01T00:00:00.789Z", "1h", "productKey=pk", `{"cloud":"aliyun","params":{"deviceName":"d"},"secret":"s3cr3t-value"}`)
	f.Add("1744594200", "90", "deviceId", `{"cloud":"huawei","secret":"s3cr3t-value","x":1}`)
	f.Add("", "-5m", "=v", `{"secret":"s3cr3t-value"`)
	f.Fuzz(func(t *testing.T, now, ttl, param, device string) {
		if _, err := parseNow(now, time.Now); err != nil && !isUsage(err) {
			t.Fatalf("parseNow(%q): %v is not a usage error", now, err)
		}
		if d, err := parseTTL(ttl); err != nil && !isUsage(err) || err == nil && d <= 0 {
			t.Fatalf("parseTTL(%q) = %v, %v", ttl, d, err)
		}
		if err := (paramFlags{}).Set(param); err == nil && !strings.Contains(param, "=") {
			t.Fatalf("Set(%q) accepted a param without '='", param)
		}
		const secret = "s3cr3t-value"
		_, err := readDevice("-", strings.NewReader(device))
		if err != nil && (!isUsage(err) || strings.Contains(err.Error(), secret)) {
			t.Fatalf("readDevice: %v", err)
		}
	})
}

func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}
