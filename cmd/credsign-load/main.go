// Command credsign-load measures a running credsign server: credential
// issuance beside a GET /healthz baseline on the same server, interleaved,
// reported as ratios. It only ever talks to the --server it is given; point
// it at a server of your own (scripts/load.sh starts one on loopback).
//
//	CREDSIGN_ADMIN_TOKEN=… credsign-load --server http://127.0.0.1:8080
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/credsign/credsign/internal/loadgen"
)

func main() {
	var o loadgen.Options
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.StringVar(&o.Server, "server", "http://127.0.0.1:8080", "credsign base URL")
	flag.IntVar(&o.Devices, "devices", 5, "devices registered per cloud")
	flag.IntVar(&o.Concurrency, "concurrency", 8, "concurrent workers")
	flag.DurationVar(&o.Phase, "phase", 2*time.Second, "length of each measured phase")
	flag.IntVar(&o.Rounds, "rounds", 3, "baseline/credentials rounds")
	flag.Parse()
	o.AdminToken = os.Getenv("CREDSIGN_ADMIN_TOKEN")
	o.ProvisionerToken = os.Getenv("CREDSIGN_PROVISIONER_TOKEN")
	if o.AdminToken == "" && o.ProvisionerToken == "" {
		fmt.Fprintln(os.Stderr, "credsign-load: set CREDSIGN_ADMIN_TOKEN or CREDSIGN_PROVISIONER_TOKEN")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := loadgen.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "credsign-load: %v\n", err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Print(r)
}
