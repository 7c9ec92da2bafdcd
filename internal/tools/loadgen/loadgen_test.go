package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/testing/servertest"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
)

// TestRunAgainstRealServer drives a real server (embedded store, loopback)
// for a short run: every request must succeed, both kinds must be measured,
// and the devices it registered must be gone afterwards.
func TestRunAgainstRealServer(t *testing.T) {
	const admin = "csa_loadgen-test-admin-0123456789"
	ts, st := servertest.Start(t, service.Config{AdminToken: admin})

	r, err := Run(context.Background(), Options{Server: ts.URL, AdminToken: admin, Devices: 1, Concurrency: 2, Phase: 200 * time.Millisecond, Rounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Baseline.Errors != 0 || r.Credentials.Errors != 0 {
		t.Errorf("errors: %+v", r)
	}
	if r.Baseline.Requests == 0 || r.Credentials.Requests == 0 || r.ThroughputRatio <= 0 || r.P50Ratio <= 0 {
		t.Errorf("nothing measured: %+v", r)
	}
	if !strings.Contains(r.String(), "credentials/baseline") {
		t.Errorf("report: %s", r)
	}
	page, err := st.ListDevices(context.Background(), secrets.ListOptions{})
	if err != nil || len(page.Devices) != 0 {
		t.Errorf("devices left behind: %v, %v", page.Devices, err)
	}
}

// TestRunReportsRefusals: a wrong admin token fails the run with the server's
// answer, not a hang or a zero report.
func TestRunReportsRefusals(t *testing.T) {
	ts, _ := servertest.Start(t, service.Config{AdminToken: "csa_the-right-admin-token-0123"})
	_, err := Run(context.Background(), Options{Server: ts.URL, AdminToken: "csa_a-wrong-admin-token-000000", Phase: 50 * time.Millisecond, Rounds: 1})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v, want a 401", err)
	}
}
