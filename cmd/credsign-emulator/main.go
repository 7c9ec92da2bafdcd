// Command credsign-emulator runs one cloud's emulated MQTT broker on this
// machine (package internal/cloudemu), so that a device agent can be tried
// without a cloud account. It authenticates CONNECTs by the cloud's recipe,
// enforces expiry as the cloud does, and logs connections and messages
// (never a password) to stderr.
//
//	credsign-emulator --cloud azure --param hubHost=myhub.azure-devices.net \
//	  --param deviceId=lamp-7 --secret KEY --tls --ca-out /tmp/emu-ca.pem
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/credsign/credsign/internal/cloudemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// params is a repeatable name=value flag.
type params map[string]string

func (p params) String() string { return fmt.Sprint(map[string]string(p)) }

func (p params) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	p[k] = v
	return nil
}

// names is a repeatable string flag.
type names []string

func (n *names) String() string     { return strings.Join(*n, ",") }
func (n *names) Set(s string) error { *n = append(*n, s); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("credsign-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cloud := fs.String("cloud", "", "aliyun, tencent, huawei, azure, onenet, baidu, tuya, jwt or aws")
	jwks := fs.String("jwks", "", "jwt and aws: the issuer's JWKS, a URL (credsign's /.well-known/jwks.json) or a file")
	issuer := fs.String("issuer", "", "jwt and aws: the iss claim tokens must carry (default: any)")
	audience := fs.String("audience", "", "jwt: an aud claim tokens must carry (default: none required)")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	useTLS := fs.Bool("tls", false, "listen with TLS (certificate from a CA generated at start)")
	caOut := fs.String("ca-out", "", "with --tls, write the CA certificate (PEM) here for --broker-ca-file")
	secretEnv := fs.String("secret-env", "CREDSIGN_EMULATOR_SECRET", "environment variable holding the device secret (used when --secret is empty)")
	secret := fs.String("secret", "", "the device secret the emulator accepts (visible in ps; prefer --secret-env)")
	var hosts names
	fs.Var(&hosts, "cert-host", "with --tls, another name or address the certificate is valid for (repeatable; localhost and 127.0.0.1 always are)")
	p := params{}
	fs.Var(p, "param", "device param as in the device document, name=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *secret == "" {
		*secret = getenv(*secretEnv)
	}
	if *secret == "" && *cloud != cloudemu.JWT {
		fmt.Fprintln(stderr, "credsign-emulator: no device secret: --secret or $"+*secretEnv)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	e, err := cloudemu.Start(cloudemu.Options{Cloud: *cloud, Addr: *addr, TLS: *useTLS, Hosts: hosts, Logger: log,
		JWKSURL: *jwks, Issuer: *issuer, Audience: *audience})
	if err != nil {
		fmt.Fprintf(stderr, "credsign-emulator: %v\n", err)
		return 2
	}
	defer e.Close()
	if err := e.AddDevice(p, *secret); err != nil {
		fmt.Fprintf(stderr, "credsign-emulator: %v\n", err)
		return 2
	}
	if *caOut != "" {
		if !*useTLS {
			fmt.Fprintln(stderr, "credsign-emulator: --ca-out needs --tls")
			return 2
		}
		if err := os.WriteFile(*caOut, e.CAPEM(), 0o644); err != nil {
			fmt.Fprintf(stderr, "credsign-emulator: write CA: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "%s emulator listening on %s (tls=%t); register the device with params host=%s port=%d\n",
		*cloud, e.Addr(), e.TLS(), e.Host(), e.Port())
	<-ctx.Done()
	return 0
}
