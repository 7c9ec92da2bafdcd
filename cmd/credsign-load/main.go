// Command credsign-load measures a running credsign server. It only ever
// talks to the server it is given (and, for the boot storm's baseline, the
// Vault in VAULT_ADDR); point it at a server of your own (scripts/load.sh
// and scripts/bootstorm.sh start one on loopback).
//
// It finds the server and its token as the other client commands do
// (docs/cli.md): --server, else $CREDSIGN_SERVER, else
// http://127.0.0.1:8080; --token-file, else $CREDSIGN_TOKEN, else the file
// $CREDSIGN_TOKEN_FILE names. A token that starts with csp_ is used as a
// provisioner token, any other as the admin token. The variables it read
// before, $CREDSIGN_ADMIN_TOKEN and $CREDSIGN_PROVISIONER_TOKEN, still
// work, and win over $CREDSIGN_TOKEN and $CREDSIGN_TOKEN_FILE (not over
// --token-file).
//
// By default it measures credential issuance beside a GET /healthz baseline
// on the same server, interleaved, reported as ratios:
//
//	CREDSIGN_TOKEN=… credsign-load --server http://127.0.0.1:8080
//
// With --storm N it runs a boot storm instead: N devices registered through
// the bulk import (POST /v1/imports, tokens=true), then every device asks
// once for credentials with --storm-concurrency callers, cold and then warm,
// beside a bare net/http handler answering the same bytes and, when
// VAULT_ADDR and VAULT_TOKEN are set, GETs of one Vault KV v2 key:
//
//	CREDSIGN_TOKEN=… credsign-load --server http://127.0.0.1:8080 --storm 20000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	clisettings "github.com/credsign/credsign/internal/cli"
	"github.com/credsign/credsign/internal/tools/loadgen"
)

// config is one run's command line, resolved.
type config struct {
	o          loadgen.Options
	asJSON     bool
	storm      int
	stormConc  int
	vaultMount string
}

// Variables the command read before the shared settings; still read.
const (
	oldAdminEnv       = "CREDSIGN_ADMIN_TOKEN"
	oldProvisionerEnv = "CREDSIGN_PROVISIONER_TOKEN"
)

// parse reads the command line and the environment (getenv); warnings
// about deprecated spellings go to stderr.
func parse(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	const prog = "credsign-load"
	var c config
	var s clisettings.Settings
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(stderr)
	s.Register(fs, prog, getenv, stderr, false)
	fs.BoolVar(&c.asJSON, "json", false, "print the report as JSON")
	fs.IntVar(&c.o.Devices, "devices", 5, "devices registered per cloud")
	fs.IntVar(&c.o.Concurrency, "concurrency", 8, "concurrent workers")
	fs.DurationVar(&c.o.Phase, "phase", 2*time.Second, "length of each measured phase")
	fs.IntVar(&c.o.Rounds, "rounds", 3, "baseline/credentials rounds")
	fs.IntVar(&c.storm, "storm", 0, "run a boot storm of this many devices instead")
	fs.IntVar(&c.stormConc, "storm-concurrency", 256, "concurrent callers of the boot storm")
	fs.StringVar(&c.vaultMount, "vault-mount", "secret", "KV v2 mount of the Vault baseline (boot storm, with VAULT_ADDR and VAULT_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	var err error
	if c.o.Server, err = s.Server(); err != nil {
		return c, err
	}
	fileGiven := false
	fs.Visit(func(f *flag.Flag) { fileGiven = fileGiven || f.Name == clisettings.TokenFileFlag })
	if !fileGiven && (getenv(oldAdminEnv) != "" || getenv(oldProvisionerEnv) != "") {
		c.o.AdminToken, c.o.ProvisionerToken = getenv(oldAdminEnv), getenv(oldProvisionerEnv)
		return c, nil
	}
	tok, err := s.Token()
	if err != nil {
		return c, fmt.Errorf("%w (or $%s, $%s)", err, oldAdminEnv, oldProvisionerEnv)
	}
	if strings.HasPrefix(tok, "csp_") {
		c.o.ProvisionerToken = tok
	} else {
		c.o.AdminToken = tok
	}
	return c, nil
}

func main() {
	c, err := parse(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "credsign-load: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var r fmt.Stringer
	if c.storm > 0 {
		o := c.o
		r, err = loadgen.BootStorm(ctx, loadgen.StormOptions{
			Server: o.Server, AdminToken: o.AdminToken, ProvisionerToken: o.ProvisionerToken,
			Devices: c.storm, Concurrency: c.stormConc,
			VaultAddr: os.Getenv("VAULT_ADDR"), VaultToken: os.Getenv("VAULT_TOKEN"), VaultMount: c.vaultMount,
		})
	} else {
		r, err = loadgen.Run(ctx, c.o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "credsign-load: %v\n", err)
		os.Exit(1)
	}
	if c.asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Print(r)
}
