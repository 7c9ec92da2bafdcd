// Command barehttp is the baseline of scripts/wrk.sh: a bare net/http
// server that answers every request with the bytes of one file (a
// credentials answer captured from credsign), so that wrk measures what the
// machine gives a Go HTTP server with nothing behind it, in the same run as
// credsign.
//
//	go run ./internal/tools/barehttp -addr 127.0.0.1:0 -body answer.json
//
// It prints "listening ADDR" on stdout once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	bodyFile := flag.String("body", "", "file whose bytes every answer carries")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatalf("barehttp: %v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("barehttp: %v", err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
	log.Fatal(http.Serve(ln, h))
}
