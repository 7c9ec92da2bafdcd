package metrics

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
)

// TestInstrumentStore calls every method of an instrumented real store once
// (some failing on purpose) and reads the exposition: each operation is
// timed under its own name and each error counted under its kind.
func TestInstrumentStore(t *testing.T) {
	ctx := context.Background()
	fs, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	s := m.InstrumentStore(fs)
	defer s.Close()

	dev := secrets.Device{ID: "lamp", Cloud: "aliyun", Params: map[string]any{"productKey": "pk", "deviceName": "lamp"}, Secret: "s3cret"}
	if _, err := s.PutDevice(ctx, dev, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDevice(ctx, "missing"); err == nil {
		t.Fatal("GetDevice of a missing device succeeded")
	}
	if _, err := s.ListDevices(ctx, secrets.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	tok := secrets.Token{ID: "t1", Hash: strings.Repeat("ab", 32), Role: secrets.RoleDevice, DeviceID: "lamp", CreatedAt: time.Now()}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenByHash(ctx, tok.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetToken(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "t1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKey(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKey(ctx, "k", []byte("v"), 0); err == nil {
		t.Fatal("PutKey over an existing key with ifVersion 0 succeeded")
	}
	if v, version, err := s.GetKey(ctx, "k"); err != nil || string(v) != "v" || version != 1 {
		t.Fatalf("GetKey = %q, %d, %v", v, version, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDevice(ctx, "lamp"); err != nil {
		t.Fatal(err)
	}

	text := exposition(t, m)
	for _, want := range []string{
		`credsign_store_operation_duration_seconds_count{op="put_device"} 1`,
		`credsign_store_operation_duration_seconds_count{op="get_device"} 1`,
		`credsign_store_operation_duration_seconds_count{op="list_devices"} 1`,
		`credsign_store_operation_duration_seconds_count{op="delete_device"} 1`,
		`credsign_store_operation_duration_seconds_count{op="put_token"} 1`,
		`credsign_store_operation_duration_seconds_count{op="token_by_hash"} 1`,
		`credsign_store_operation_duration_seconds_count{op="get_token"} 1`,
		`credsign_store_operation_duration_seconds_count{op="revoke_token"} 1`,
		`credsign_store_operation_duration_seconds_count{op="put_key"} 2`,
		`credsign_store_operation_duration_seconds_count{op="get_key"} 1`,
		`credsign_store_operation_duration_seconds_count{op="ping"} 1`,
		`credsign_store_errors_total{kind="not_found",op="get_device"} 1`,
		`credsign_store_errors_total{kind="conflict",op="put_key"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if n := strings.Count(text, "credsign_store_errors_total{"); n != 2 {
		t.Errorf("%d store error series, want 2:\n%s", n, text)
	}
}

// TestInstrumentStoreKeepsBulk checks that the instrumented store writes in
// bulk exactly when the store it wraps does: the service mints a device's
// token into the same bulk write only then.
func TestInstrumentStoreKeepsBulk(t *testing.T) {
	fs, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	m := New()
	for _, tt := range []struct {
		name  string
		store secrets.Store
		bulk  bool
	}{
		{"filestore", fs, true},
		{"without bulk writes", struct{ secrets.Store }{fs}, false},
	} {
		_, ok := m.InstrumentStore(tt.store).(secrets.BulkDeviceStore)
		if ok != tt.bulk {
			t.Errorf("%s: instrumented store is a BulkDeviceStore: %v, want %v", tt.name, ok, tt.bulk)
		}
	}
}

// exposition returns m's registry in the text format, as /metrics serves it.
func exposition(t *testing.T, m *Metrics) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "metrics.prom")
	if err := prometheus.WriteToTextfile(f, m.Registry); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEnrolmentsExportedFromStart scrapes a new registry: the enrolment
// counter is there at zero before any enrolment (a rule's rate over it
// must not be empty), and Clouds adds every outcome of each cloud named.
func TestEnrolmentsExportedFromStart(t *testing.T) {
	m := New()
	text := exposition(t, m)
	for _, want := range []string{
		`credsign_enrolments_total{cloud="none",outcome="denied"} 0`,
		`credsign_enrolments_total{cloud="none",outcome="error"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("new registry's exposition lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, `cloud="aliyun"`) {
		t.Errorf("new registry exports a cloud no one named:\n%s", text)
	}

	m.Clouds("aliyun", "tencent")
	m.Enrolled("aliyun", OutcomeEnrolled)
	text = exposition(t, m)
	for _, c := range []string{"aliyun", "tencent"} {
		for _, o := range enrolmentOutcomes {
			v := "0"
			if c == "aliyun" && o == OutcomeEnrolled {
				v = "1"
			}
			want := `credsign_enrolments_total{cloud="` + c + `",outcome="` + o + `"} ` + v
			if !strings.Contains(text, want) {
				t.Errorf("after Clouds, exposition lacks %s", want)
			}
		}
	}
	if n := strings.Count(text, "credsign_enrolments_total{"); n != 12 {
		t.Errorf("%d enrolment series, want 12 (2 without a cloud, 5 for each of 2 clouds):\n%s", n, text)
	}
}

// TestBuildInfo scrapes a new registry for credsign_build_info: one series,
// value 1, with the Go version this test runs on. (A test binary records
// no module version or VCS revision: "(devel)" and "".)
func TestBuildInfo(t *testing.T) {
	text := exposition(t, New())
	want := `credsign_build_info{goversion="` + runtime.Version() + `",revision="",version="(devel)"} 1`
	if !strings.Contains(text, want) {
		t.Errorf("exposition lacks %s:\n%s", want, text)
	}
	if n := strings.Count(text, "credsign_build_info{"); n != 1 {
		t.Errorf("%d build_info series, want 1", n)
	}
}
