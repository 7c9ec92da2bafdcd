// Command credsign-load measures a running credsign server. It only ever
// talks to the --server it is given (and, for the boot storm's baseline, the
// Vault in VAULT_ADDR); point it at a server of your own (scripts/load.sh
// and scripts/bootstorm.sh start one on loopback).
//
// By default it measures credential issuance beside a GET /healthz baseline
// on the same server, interleaved, reported as ratios:
//
//	CREDSIGN_ADMIN_TOKEN=… credsign-load --server http://127.0.0.1:8080
//
// With --storm N it runs a boot storm instead: N devices registered through
// the bulk import (POST /v1/imports, tokens=true), then every device asks
// once for credentials with --storm-concurrency callers, cold and then warm,
// beside a bare net/http handler answering the same bytes and, when
// VAULT_ADDR and VAULT_TOKEN are set, GETs of one Vault KV v2 key:
//
//	CREDSIGN_ADMIN_TOKEN=… credsign-load --server http://127.0.0.1:8080 --storm 20000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/credsign/credsign/internal/tools/loadgen"
)

func main() {
	var o loadgen.Options
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.StringVar(&o.Server, "server", "http://127.0.0.1:8080", "credsign base URL")
	flag.IntVar(&o.Devices, "devices", 5, "devices registered per cloud")
	flag.IntVar(&o.Concurrency, "concurrency", 8, "concurrent workers")
	flag.DurationVar(&o.Phase, "phase", 2*time.Second, "length of each measured phase")
	flag.IntVar(&o.Rounds, "rounds", 3, "baseline/credentials rounds")
	storm := flag.Int("storm", 0, "run a boot storm of this many devices instead")
	stormConc := flag.Int("storm-concurrency", 256, "concurrent callers of the boot storm")
	vaultMount := flag.String("vault-mount", "secret", "KV v2 mount of the Vault baseline (boot storm, with VAULT_ADDR and VAULT_TOKEN)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "credsign-load: unexpected arguments %v\n", flag.Args())
		os.Exit(2)
	}
	o.AdminToken = os.Getenv("CREDSIGN_ADMIN_TOKEN")
	o.ProvisionerToken = os.Getenv("CREDSIGN_PROVISIONER_TOKEN")
	if o.AdminToken == "" && o.ProvisionerToken == "" {
		fmt.Fprintln(os.Stderr, "credsign-load: set CREDSIGN_ADMIN_TOKEN or CREDSIGN_PROVISIONER_TOKEN")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var r fmt.Stringer
	var err error
	if *storm > 0 {
		r, err = loadgen.BootStorm(ctx, loadgen.StormOptions{
			Server: o.Server, AdminToken: o.AdminToken, ProvisionerToken: o.ProvisionerToken,
			Devices: *storm, Concurrency: *stormConc,
			VaultAddr: os.Getenv("VAULT_ADDR"), VaultToken: os.Getenv("VAULT_TOKEN"), VaultMount: *vaultMount,
		})
	} else {
		r, err = loadgen.Run(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "credsign-load: %v\n", err)
		os.Exit(1)
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Print(r)
}
