package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/migrate"
)

// migrateUsage is the help of `credsign migrate`.
const migrateUsage = `usage: credsign migrate --from file:DIR|vault --to file:DIR|vault [flags]

Copies every record of one store into another: devices and groups with their
secrets, every token record (provisioner, device, enrolment) by its hash, the
device token MAC key, the revocation lists and the JWT key ring, so that every
device and every token keeps working on the destination. Resumable: records
already equal at the destination are skipped; ones that differ are reported and
left alone unless --force. The servers on both stores should be stopped (a file
store is open in one process at a time; migrate from a backup to keep serving).
Prints a count of each kind at the end; exits 1 if anything differed or failed.

flags:`

// runMigrate is `credsign migrate`: copy every record of one store into
// another.
func runMigrate(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("credsign migrate", flag.ContinueOnError)
	from := fs.String("from", "", "source store: file:DIR (the embedded store in DIR) or vault (VAULT_ADDR and the other settings serve reads)")
	to := fs.String("to", "", "destination store, as --from")
	fromKey := fs.String("from-key-file", "", "key file of a file: source (else CREDSIGN_STORE_KEY, else DIR/store.key)")
	toKey := fs.String("to-key-file", "", "key file of a file: destination (else CREDSIGN_STORE_KEY, else DIR/store.key, created for a new store)")
	dryRun := fs.Bool("dry-run", false, "read both stores and count what would be copied; write nothing")
	force := fs.Bool("force", false, "overwrite devices, groups and keys that differ at the destination (token records are never overwritten)")
	parallel := fs.Int("parallel", 32, "reads and writes under way at once (each a round trip to Vault)")
	if code, done := parseCLI(fs, migrateUsage, args, stderr); done {
		return code
	}
	fail := failWith(stderr, fs.Name())
	src, err := parseStoreSpec(*from, *fromKey, "--from")
	var dst serveFlags
	if err == nil {
		dst, err = parseStoreSpec(*to, *toKey, "--to")
	}
	switch {
	case err != nil:
		return fail(exitUsage, err)
	case fs.NArg() != 0:
		return fail(exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *from == *to:
		return fail(exitUsage, errors.New("--from and --to name the same store"))
	case *parallel < 1:
		return fail(exitUsage, errors.New("--parallel must be 1 or more"))
	}
	if src.store == "file" {
		if err := haveStore(src.dataDir); err != nil {
			return fail(exitError, fmt.Errorf("source: %w", err))
		}
	}
	source, _, err := openStore(ctx, src, os.Getenv, zerolog.Nop())
	if err != nil {
		return fail(exitError, fmt.Errorf("source: %w", err))
	}
	defer source.Close()
	dest, _, err := openStore(ctx, dst, os.Getenv, zerolog.Nop())
	if err != nil {
		return fail(exitError, fmt.Errorf("destination: %w", err))
	}
	defer dest.Close()

	start := time.Now()
	var mu sync.Mutex
	last := start
	opts := migrate.Options{DryRun: *dryRun, Force: *force, Parallel: *parallel,
		Progress: func(r migrate.Report) {
			mu.Lock()
			defer mu.Unlock()
			if time.Since(last) < 5*time.Second {
				return
			}
			last = time.Now()
			fmt.Fprintf(stderr, "credsign migrate: %s\n", progressLine(r))
		}}
	report, err := migrate.Copy(ctx, source, dest, opts)
	d := time.Since(start)
	what := "copied"
	if *dryRun {
		what = "would copy"
	}
	fmt.Fprintf(stdout, "%-8s %8s %8s %8s %8s %9s\n", "kind", "source", what, "same", "updated", "conflicts")
	for _, k := range []secrets.Kind{secrets.KindDevice, secrets.KindGroup, secrets.KindToken, secrets.KindKey} {
		t := report[k]
		fmt.Fprintf(stdout, "%-8s %8d %8d %8d %8d %9d\n", k, t.Source, t.Copied, t.Same, t.Updated, t.Conflicts)
	}
	records := 0
	for _, t := range report {
		records += t.Source
	}
	secs := max(d.Seconds(), 1e-3)
	fmt.Fprintf(stdout, "%s -> %s: %d records in %s (%.0f records/s, %.0f devices/s)\n", *from, *to, records, d.Round(time.Millisecond),
		float64(records)/secs, float64(report[secrets.KindDevice].Source)/secs)
	if err != nil {
		return fail(exitError, err)
	}
	return exitOK
}

// progressLine says how far a copy is.
func progressLine(r migrate.Report) string {
	var parts []string
	for _, k := range secrets.Kinds {
		t := r[k]
		parts = append(parts, fmt.Sprintf("%s %d/%d", k, t.Copied+t.Same+t.Updated+t.Conflicts, t.Source))
	}
	return strings.Join(parts, ", ")
}

// parseStoreSpec turns file:DIR or vault into the serve flags that open it.
func parseStoreSpec(spec, keyFile, name string) (serveFlags, error) {
	switch {
	case spec == "vault":
		if keyFile != "" {
			return serveFlags{}, fmt.Errorf("%s-key-file is for a file: store", name)
		}
		return serveFlags{store: "vault"}, nil
	case strings.HasPrefix(spec, "file:") && len(spec) > len("file:"):
		return serveFlags{store: "file", dataDir: strings.TrimPrefix(spec, "file:"), storeKeyFile: keyFile}, nil
	case spec == "":
		return serveFlags{}, fmt.Errorf("give %s (file:DIR or vault)", name)
	}
	return serveFlags{}, fmt.Errorf("%s is file:DIR or vault, not %q", name, spec)
}
