// Command credsign-agent is the reference device agent of credsign: it
// fetches short-lived MQTT credentials with a device token and keeps a
// device connected to its cloud broker, without holding the cloud secret.
//
//	credsign-agent run   [flags] [--sub TOPIC]... [--sub-commands] [--pub-topic TOPIC | --pub-telemetry] [--pub-socket PATH]
//	credsign-agent pub   [flags] (-t TOPIC | --telemetry) [-m MESSAGE]
//	credsign-agent sub   [flags] (-t TOPIC... | --commands) [-C COUNT] [-v]
//	credsign-agent creds [flags] [--format json|env]
//	credsign-agent exec  [flags] -- COMMAND [ARG]...
//	credsign-agent enrol [flags] --enrolment-token-file FILE --device ID --token-file FILE
//	credsign-agent tpm-key --tpm PATH --tpm-key-file FILE
//	credsign-agent --version
//
// Common flags (each also an environment variable and a key of the
// optional --config file, which uses the same NAME='value' lines as
// `creds --format env`): --server CREDSIGN_SERVER, --device CREDSIGN_DEVICE,
// --token-file CREDSIGN_TOKEN_FILE, or instead a device key: --key-file
// CREDSIGN_KEY_FILE, or --tpm-key-file CREDSIGN_TPM_KEY_FILE with --tpm
// CREDSIGN_TPM for a key in a TPM (enrol attests it; the build tag notpm
// leaves the TPM code out), --ca-file CREDSIGN_CA_FILE, --ttl
// CREDSIGN_TTL, --log-level CREDSIGN_LOG_LEVEL, and for run, pub and sub
// --broker-ca-file CREDSIGN_BROKER_CA_FILE and --keepalive
// CREDSIGN_KEEPALIVE. Flags win over the environment, which wins over the
// file.
//
// --telemetry (pub), --commands (sub), --pub-telemetry and --sub-commands
// (run) use the topics credsign names for the device's cloud in each set of
// credentials, so the same command line works on every cloud and follows a
// device re-registered on another one.
//
// Exit status: 0 done, 1 failed (one line on stderr says why), 2 a usage
// error; exec exits with its command's status.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/credsign/credsign/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `usage: credsign-agent COMMAND [flags]
       credsign-agent --version

commands:
  run    connect and stay connected; print what arrives on --sub topics
         (--sub-commands: the cloud's commands topic), publish lines from
         stdin (and --pub-socket) to --pub-topic (--pub-telemetry: the
         cloud's telemetry topic)
  pub    publish one message (-m, or stdin) to -t or --telemetry and exit
  sub    subscribe (-t, repeatable, or --commands) and print messages
         (-C to stop after N)
  creds  print fresh credentials (--format json|env)
  exec   run a command with credentials in CREDSIGN_MQTT_* and restart it
         with fresh ones when they are refreshed: exec [flags] -- CMD ARG...
  enrol  enrol the device with its enrolment token and write its device
         token to --token-file (first boot; nothing to do when it exists),
         or with --key-file or --tpm-key-file bind the device key (created
         if absent; a TPM key is attested) instead
  keygen create the device key in --key-file and print its public JWK
  tpm-key  create the device key in the TPM (when --tpm-key-file is missing)
         and print its public JWK and kid, to bind it to the device

Run "credsign-agent COMMAND -h" for the flags of a command.
`

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, `credsign-agent: no command; run "credsign-agent -h" for the list`)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, cli.Version("credsign-agent"))
		return 0
	}
	sp, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "credsign-agent: unknown command %q; run \"credsign-agent -h\" for the list\n", args[0])
		return 2
	}
	c, err := parse(args[0], args[1:], getenv, stdin, stdout, stderr)
	if err == nil {
		err = sp.run(ctx, c)
		c.close()
	}
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "credsign-agent %s: %v (see credsign-agent %s -h)\n", args[0], err, args[0])
		return 2
	case ctx.Err() != nil:
		return 0 // stopped by a signal
	case errors.As(err, &ee):
		return ee.code
	}
	fmt.Fprintf(stderr, "credsign-agent %s: %v\n", args[0], err)
	return 1
}
