package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestVersionLine(t *testing.T) {
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"release", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}}, "agent v1.4.0 go1.26.8"},
		{"checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "a20a5b6"}, {Key: "vcs.modified", Value: "false"}}},
			"agent (devel) rev a20a5b6 go1.26.8"},
		{"dirty", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.1-0.20261201-a20a5b6"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "a20a5b6"}, {Key: "vcs.modified", Value: "true"}}},
			"agent v1.4.1-0.20261201-a20a5b6 rev a20a5b6+dirty go1.26.8"},
		{"test binary", debug.BuildInfo{GoVersion: "go1.26.8"}, "agent (devel) go1.26.8"},
	}
	for _, tt := range tests {
		if got := versionLine("agent", &tt.bi); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if v := Version("agent"); !strings.HasPrefix(v, "agent ") {
		t.Fatalf("Version = %q", v)
	}
}

// The log has the server's shape: zerolog's field names, which
// cmd/credsign serve uses unchanged.
func TestLoggerWritesTheServersFields(t *testing.T) {
	var buf bytes.Buffer
	log := Logger(&buf, slog.LevelInfo)
	log.Debug("hidden")
	log.Warn("cannot fetch credentials", "error", errors.New("credsign answered 503"), "retry_in", "1.5s")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", buf.String(), err)
	}
	for k, want := range map[string]any{
		zerolog.LevelFieldName: "warn", zerolog.MessageFieldName: "cannot fetch credentials",
		zerolog.ErrorFieldName: "credsign answered 503", "retry_in": "1.5s",
	} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %v (record %s)", k, rec[k], want, buf.String())
		}
	}
	if _, err := time.Parse(time.RFC3339, rec[zerolog.TimestampFieldName].(string)); err != nil {
		t.Errorf("time: %v", err)
	}
	if want := []string{"level", "time", "message", "error"}; zerolog.LevelFieldName != want[0] || zerolog.TimestampFieldName != want[1] ||
		zerolog.MessageFieldName != want[2] || zerolog.ErrorFieldName != want[3] {
		t.Errorf("zerolog's field names changed; the server's log and this one must agree")
	}
}

func TestLoggerLevelCanChange(t *testing.T) {
	var buf bytes.Buffer
	var lv slog.LevelVar
	lv.Set(slog.LevelWarn)
	log := Logger(&buf, &lv).With("emulator", "huawei")
	log.Info("starting")
	lv.Set(slog.LevelInfo)
	log.Info("CONNECT accepted")
	if got := buf.String(); strings.Contains(got, "starting") || !strings.Contains(got, `"emulator":"huawei"`) || !strings.Contains(got, `"message":"CONNECT accepted"`) {
		t.Fatalf("log %q", got)
	}
}

func TestParseLevel(t *testing.T) {
	for s, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		if l, err := ParseLevel(s); err != nil || l != want {
			t.Errorf("ParseLevel(%q) = %v, %v", s, l, err)
		}
	}
	for _, s := range []string{"", "WARN+2", "verbose"} {
		if _, err := ParseLevel(s); err == nil {
			t.Errorf("ParseLevel(%q) accepted", s)
		}
	}
}
