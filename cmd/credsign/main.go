// Command credsign is the credsign service and its operator CLI.
//
//	credsign serve    run the HTTP API
//	credsign sign     derive MQTT credentials offline and print them as JSON
//	credsign explain  like sign, and print every step of the recipe (secret redacted)
//	credsign clouds   list the supported clouds and their params
//	credsign import   register devices in bulk from an NDJSON file
//	credsign doctor   say which part of a device's refused triple differs and why
//	credsign backup   copy the embedded store while it serves; backup verify checks a copy
//	credsign restore  install a backup as a data directory's store
//	credsign migrate  copy every record from one store to another (file to Vault and back)
//
// and the API's client, with --server/$CREDSIGN_SERVER and
// --token-file/$CREDSIGN_TOKEN_FILE (or $CREDSIGN_TOKEN), table output or
// --json (docs/cli.md):
//
//	credsign devices           list|get|put|delete
//	credsign groups            list|get|put|delete
//	credsign tokens            mint|revoke
//	credsign enrolment-tokens  mint|get|revoke
//	credsign keys              rotate|jwks
package main

import (
	"context"
	"fmt"
	"github.com/credsign/credsign/cloud/clouds"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"
)

// registry is every cloud credsign serves (cloud/clouds): the server, the
// offline signer and the doctor ask it.
var registry = clouds.Registry()

// exit statuses
const (
	exitOK    = 0
	exitError = 1 // something failed while doing what was asked
	exitUsage = 2 // bad input: nothing was done
)

// command runs one subcommand and returns its exit status.
type command func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

var commands = map[string]command{
	"sign":    runSign,
	"explain": runExplain,
	"clouds":  runClouds,
	"serve":   runServe,
	"import":  runImport,
	"doctor":  runDoctor,
	"backup":  runBackup,
	"restore": runRestore,
	"migrate": runMigrate,

	"devices":          runClientGroup("devices"),
	"groups":           runClientGroup("groups"),
	"tokens":           runClientGroup("tokens"),
	"enrolment-tokens": runClientGroup("enrolment-tokens"),
	"keys":             runClientGroup("keys"),
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version") {
		fmt.Fprintln(stdout, "credsign", version())
		return exitOK
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "credsign: unknown command %q (run 'credsign help')\n", args[0])
		return exitUsage
	}
	return cmd(ctx, args[1:], stdin, stdout, stderr)
}

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: credsign <command> [flags]")
	fmt.Fprintln(w, "commands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, summaries[n])
	}
	fmt.Fprintln(w, "run 'credsign <command> -h' for a command's flags; 'credsign --version' for the version")
}

// version names the build: the module version (a tag, or "(devel)" for a
// build from a checkout) and the VCS revision when the build recorded one.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += "+dirty"
			}
		}
	}
	return v
}

var summaries = map[string]string{
	"serve":   "run the HTTP API (credsign serve --dev for a local trial)",
	"sign":    "derive MQTT credentials offline and print them as JSON",
	"explain": "like sign, and show each step of the recipe with the secret redacted",
	"clouds":  "list the supported clouds and their params",
	"import":  "register devices in bulk from an NDJSON file (POST /v1/imports)",
	"doctor":  "say why a device's captured MQTT triple is refused (which part differs and the likely cause)",
	"backup":  "copy the embedded store while the server runs (GET /v1/admin/backup); 'backup verify FILE' checks a copy",
	"restore": "install a backup as the store of a data directory",
	"migrate": "copy every device, group, token and key from one store to another (file:DIR, vault)",

	"devices":          "list, get, put, patch and delete devices, rotate a secret, bind keys (the API's /v1/devices)",
	"groups":           "list, get, put, patch and delete groups (/v1/groups)",
	"tokens":           "mint, list and revoke provisioner and device tokens",
	"enrolment-tokens": "mint, list, get and revoke a group's enrolment tokens",
	"keys":             "rotate the JWT signing key; show the JWKS",
}
