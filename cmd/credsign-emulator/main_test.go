package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no secret", []string{"--cloud", "huawei", "--param", "deviceId=d"}, nil, "no device secret"},
		{"unknown cloud", []string{"--cloud", "gcp"}, map[string]string{"CREDSIGN_EMULATOR_SECRET": "s"}, `--cloud "gcp": want one of aliyun, tencent, huawei, azure, onenet, baidu, tuya, tuyalegacy, jwt, aws`},
		{"no cloud", []string{"--param", "deviceId=d"}, map[string]string{"CREDSIGN_EMULATOR_SECRET": "s"}, `--cloud "": want one of`},
		{"unknown flag", []string{"--cloud", "huawei", "--port", "1"}, nil, "flag provided but not defined: -port"},
		{"stray argument", []string{"--cloud", "huawei", "x"}, nil, `unexpected arguments ["x"]`},
		{"missing param", []string{"--cloud", "aliyun", "--param", "productKey=pk"}, map[string]string{"CREDSIGN_EMULATOR_SECRET": "s"}, `needs param "deviceName"`},
		{"ca-out without tls", []string{"--cloud", "huawei", "--param", "deviceId=d", "--ca-out", "x.pem"}, map[string]string{"CREDSIGN_EMULATOR_SECRET": "s"}, "--ca-out needs --tls"},
		{"bad param", []string{"--cloud", "huawei", "--param", "deviceId"}, nil, "want name=value"},
		{"jwt without jwks", []string{"--cloud", "jwt", "--param", "deviceId=d"}, nil, "needs the issuer's JWKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errb strings.Builder
			code := run(context.Background(), tt.args, io.Discard, &errb, func(k string) string { return tt.env[k] })
			if code != 2 || !strings.Contains(errb.String(), tt.want) || strings.Count(errb.String(), "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want 2 and one line with %q", code, errb.String(), tt.want)
			}
		})
	}
}

func TestRunServesTLSForExtraHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret", "s", "--tls", "--ca-out", ca, "--cert-host", "broker.test"},
			outW, io.Discard, func(string) string { return "" })
		_ = outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	f := strings.Fields(line)
	if len(f) < 5 || f[1] != "emulator" || f[2] != "listening" {
		t.Fatalf("listening line %q", line)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", f[4], &tls.Config{RootCAs: pool, ServerName: "broker.test", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to %s as broker.test: %v", f[4], err)
	}
	_ = conn.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestVersionAndHelp(t *testing.T) {
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"--version"}, &out, &errb, func(string) string { return "" }); code != 0 ||
		!strings.HasPrefix(out.String(), "credsign-emulator ") || strings.Count(out.String(), "\n") != 1 || errb.Len() != 0 {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"-h"}, &out, &errb, func(string) string { return "" }); code != 0 ||
		!strings.HasPrefix(out.String(), "usage: credsign-emulator --cloud CLOUD --param NAME=VALUE...") ||
		!strings.Contains(out.String(), "  -cloud CLOUD\n") || errb.Len() != 0 {
		t.Fatalf("-h: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// A port in use is a failure to start: one plain line and status 1, not a
// log record.
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out, errb strings.Builder
	code := run(context.Background(), []string{"--cloud", "huawei", "--param", "deviceId=d", "--secret", "s", "--addr", ln.Addr().String()}, &out, &errb,
		func(string) string { return "" })
	if code != 1 || strings.Count(errb.String(), "\n") != 1 || !strings.HasPrefix(errb.String(), "credsign-emulator: ") ||
		!strings.Contains(errb.String(), "address already in use") || out.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and one line", code, out.String(), errb.String())
	}
}
