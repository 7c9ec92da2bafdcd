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
	"slices"
	"strings"
	"syscall"

	"github.com/credsign/credsign/internal/cli"
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

const synopsis = `usage: credsign-emulator --cloud CLOUD --param NAME=VALUE... [--secret-env VAR | --secret S]
                         [--jwks URL [--issuer ISS] [--audience AUD]]
                         [--addr HOST:PORT] [--tls [--ca-out FILE] [--cert-host NAME]...]
       credsign-emulator --version

Run one cloud's emulated MQTT broker for one device: it checks each CONNECT
by the cloud's recipe, drops a client when its credentials expire (where the
cloud does), and logs connections and messages to stderr as JSON lines. The
address it listens on is printed to stdout.

Exit status: 0 stopped by a signal, 1 failed to start (such as the port in
use), 2 a usage error.

flags:
`

// usageError is a wrong command line: one line on stderr, exit 2.
type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	err := serve(ctx, args, stdout, stderr, getenv)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "credsign-emulator: %v (see credsign-emulator -h)\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "credsign-emulator: %v\n", err)
	return 1
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("credsign-emulator", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors become one line; -h prints help below
	fs.Usage = func() {}
	cloud := fs.String("cloud", "", "`CLOUD`: "+strings.Join(clouds, ", ")+" (required)")
	jwks := fs.String("jwks", "", "jwt and aws (required): the issuer's JWKS, a `URL` (credsign's /.well-known/jwks.json) or a file")
	issuer := fs.String("issuer", "", "jwt and aws: the iss claim tokens must carry (default: any)")
	audience := fs.String("audience", "", "jwt: an aud claim tokens must carry (default: none required)")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	useTLS := fs.Bool("tls", false, "listen with TLS (certificate from a CA generated at start)")
	caOut := fs.String("ca-out", "", "with --tls, write the CA certificate (PEM) to `FILE` for --broker-ca-file")
	secretEnv := fs.String("secret-env", "CREDSIGN_EMULATOR_SECRET", "`VAR` is the environment variable holding the device secret (used when --secret is empty)")
	secret := fs.String("secret", "", "the device secret the emulator accepts (visible in ps; prefer --secret-env)")
	version := fs.Bool("version", false, "print the version and exit")
	var hosts names
	fs.Var(&hosts, "cert-host", "with --tls, another `NAME` or address the certificate is valid for (repeatable; localhost and 127.0.0.1 always are)")
	p := params{}
	fs.Var(p, "param", "device param as in the device document, `NAME=VALUE` (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, synopsis)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return usageError{err}
	}
	if *version {
		fmt.Fprintln(stdout, cli.Version("credsign-emulator"))
		return nil
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	case !slices.Contains(clouds, *cloud):
		return usageError{fmt.Errorf("--cloud %q: want one of %s", *cloud, strings.Join(clouds, ", "))}
	case *caOut != "" && !*useTLS:
		return usageError{errors.New("--ca-out needs --tls")}
	case (*cloud == cloudemu.JWT || *cloud == cloudemu.AWS) && *jwks == "":
		return usageError{fmt.Errorf("--cloud %s needs the issuer's JWKS: --jwks URL or FILE", *cloud)}
	}
	if *secret == "" {
		*secret = getenv(*secretEnv)
	}
	if *secret == "" && *cloud != cloudemu.JWT {
		return usageError{fmt.Errorf("no device secret: --secret or $%s", *secretEnv)}
	}
	// Quiet until serving: a failure to start is one line, not log records.
	var level slog.LevelVar
	level.Set(slog.LevelError + 1)
	e, err := cloudemu.Start(cloudemu.Options{Cloud: *cloud, Addr: *addr, TLS: *useTLS, Hosts: hosts, Logger: cli.Logger(stderr, &level),
		JWKSURL: *jwks, Issuer: *issuer, Audience: *audience})
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.AddDevice(p, *secret); err != nil {
		return usageError{err}
	}
	if *caOut != "" {
		if err := os.WriteFile(*caOut, e.CAPEM(), 0o644); err != nil {
			return fmt.Errorf("write CA: %w", err)
		}
	}
	level.Set(slog.LevelInfo)
	fmt.Fprintf(stdout, "%s emulator listening on %s (tls=%t); register the device with params host=%s port=%d\n",
		*cloud, e.Addr(), e.TLS(), e.Host(), e.Port())
	<-ctx.Done()
	return nil
}

var clouds = []string{cloudemu.Aliyun, cloudemu.Tencent, cloudemu.Huawei, cloudemu.Azure, cloudemu.OneNET, cloudemu.Baidu, cloudemu.Tuya, cloudemu.TuyaLegacy, cloudemu.JWT, cloudemu.AWS}
