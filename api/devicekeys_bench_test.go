package api

import (
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuPerOp reports the process's CPU time (user and system, client and
// server both) per operation from now until the returned function runs:
// unlike ns/op it does not grow when other processes share the machine.
func cpuPerOp(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}

// BenchmarkIssueHTTPKey is a warm issuance over HTTP on loopback,
// authenticated by a device token ("token") and by a DPoP proof of a
// device key ("key": a fresh ES256 proof each, signed before the timer
// starts, as a device signs on its own CPU), same server, same device,
// same run: their ratio is what verifying proofs of possession costs the
// server. "key+sign" also counts the signing, in the same process.
func BenchmarkIssueHTTPKey(b *testing.B) {
	ts := benchServer(b)
	req := func(method, path, token, body string) *http.Request {
		return benchRequest(ts, method, path, token, body)
	}
	token := benchDevice(b, ts)
	k, jwk := newTestKey(b)
	body := `{"jwk":{"kty":"EC","crv":"P-256","x":"` + jwk["x"].(string) + `","y":"` + jwk["y"].(string) + `"}}`
	mustDo(b, req(http.MethodPost, "/v1/devices/bench/keys", testAdmin, body), 201)
	url := ts.URL + "/v1/devices/bench/credentials"
	issue := req(http.MethodPost, "/v1/devices/bench/credentials", token, "")
	mustDo(b, issue.Clone(issue.Context()), 200)
	keyed := func() *http.Request {
		r := req(http.MethodPost, "/v1/devices/bench/credentials", "", "")
		r.Header.Set("DPoP", proofFor(b, k, jwk, "POST", url, nil))
		return r
	}
	mustDo(b, keyed(), 200)
	b.Run("token", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			mustDo(b, issue.Clone(issue.Context()), 200)
		}
	})
	b.Run("key", func(b *testing.B) {
		reqs := make([]*http.Request, b.N)
		for i := range reqs {
			reqs[i] = keyed()
		}
		b.ResetTimer()
		defer cpuPerOp(b)()
		for i := range b.N {
			mustDo(b, reqs[i], 200)
		}
	})
	b.Run("key+sign", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			mustDo(b, keyed(), 200)
		}
	})
	b.Run("token-again", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			mustDo(b, issue.Clone(issue.Context()), 200)
		}
	})
}

// BenchmarkEnrolHTTPKey is one enrolment over HTTP on loopback into a
// group on the embedded store: with a DPoP proof, binding the device's
// key ("key", the proof signed before the timer starts), and with the
// enrolment token alone, minting a device token ("token"). Each creates
// a new device (a synced write); enrolments/s is 1e9 / ns/op.
func BenchmarkEnrolHTTPKey(b *testing.B) {
	ts := benchServer(b)
	do := func(method, path, token, body string, hdr ...string) []byte {
		r, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		want := 201
		if method == http.MethodPut {
			want = 0
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		out := make([]byte, 4096)
		n, _ := res.Body.Read(out)
		if want != 0 && res.StatusCode != want {
			b.Fatalf("%s %s: %d %s", method, path, res.StatusCode, out[:n])
		}
		return out[:n]
	}
	do(http.MethodPut, "/v1/groups/grp", testAdmin, `{"cloud":"azure","params":{"hubHost":"myhub.azure-devices.net","deviceId":"{deviceId}"},"secret":"`+testGroupKey+`"}`)
	var et struct{ Token string }
	decode(b, do(http.MethodPost, "/v1/groups/grp/enrolment-tokens", testAdmin, `{"maxUses":1000000,"ttlSeconds":3600}`), &et)
	n := 0
	b.Run("token", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			n++
			do(http.MethodPost, "/v1/enrol", et.Token, `{"deviceId":"t-`+strconv.Itoa(n)+`"}`)
		}
	})
	b.Run("key", func(b *testing.B) {
		proofs := make([]string, b.N)
		for i := range proofs {
			k, jwk := newTestKey(b)
			proofs[i] = proofFor(b, k, jwk, "POST", ts.URL+"/v1/enrol", nil)
		}
		b.ResetTimer()
		defer cpuPerOp(b)()
		for i := range b.N {
			n++
			do(http.MethodPost, "/v1/enrol", et.Token, `{"deviceId":"k-`+strconv.Itoa(n)+`"}`, "DPoP", proofs[i])
		}
	})
}
