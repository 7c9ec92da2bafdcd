package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	clisettings "github.com/credsign/credsign/internal/cli"
	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
)

// backupFlags are the flags of `credsign backup`.
type backupFlags struct {
	settings clisettings.Settings
	dataDir  string
	keyFile  string
	out      string
}

// backupUsage is the help of `credsign backup`.
const backupUsage = `usage: credsign backup [flags] -o FILE
       credsign backup verify [--key-file K] FILE

Writes a consistent copy of the embedded store while the server keeps serving
(GET /v1/admin/backup, admin token), or of a stopped server's --data-dir. The
copy is the data file with its records sealed; the key is not in it: keep the
key file apart. 'backup verify' opens a copy with the key and reads every record.

flags:`

// runBackup is `credsign backup`: a consistent copy of the embedded store,
// from a running server (GET /v1/admin/backup) or from a stopped one's
// data directory; `credsign backup verify FILE` checks one.
func runBackup(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "verify" {
		return runBackupVerify(ctx, args[1:], stdout, stderr)
	}
	var f backupFlags
	fs := flag.NewFlagSet("credsign backup", flag.ContinueOnError)
	f.settings.Register(fs, "credsign backup", nil, stderr, false)
	fs.StringVar(&f.dataDir, "data-dir", "", "back up this data directory instead of a server (the server must be stopped: the store is open in one process at a time)")
	fs.StringVar(&f.keyFile, "store-key-file", "", "with --data-dir: the store's key file (else CREDSIGN_STORE_KEY, else the key file in --data-dir)")
	fs.StringVar(&f.out, "o", "", "write the backup to this new `file` (required)")
	if code, done := parseCLI(fs, backupUsage, args, stderr); done {
		return code
	}
	fail := failWith(stderr, fs.Name())
	switch {
	case fs.NArg() != 0:
		return fail(exitUsage, fmt.Errorf("unexpected argument %q (the file goes after -o)", fs.Arg(0)))
	case f.out == "":
		return fail(exitUsage, errors.New("give the file to write with -o FILE"))
	case f.dataDir == "" && f.keyFile != "":
		return fail(exitUsage, errors.New("--store-key-file goes with --data-dir"))
	}
	var fetch func(w io.Writer) (int64, error)
	if f.dataDir != "" {
		fetch = func(w io.Writer) (int64, error) { return backupDir(ctx, f, w) }
	} else {
		server, err := f.settings.Server()
		if err != nil {
			return fail(exitUsage, err)
		}
		token, err := f.settings.Token()
		if err != nil {
			return fail(exitUsage, err)
		}
		fetch = func(w io.Writer) (int64, error) { return backupServer(ctx, server, token, w) }
	}
	start := time.Now()
	n, err := writeNewFile(f.out, fetch)
	if err != nil {
		return fail(exitError, err)
	}
	d := time.Since(start)
	fmt.Fprintf(stdout, "backup: %d bytes to %s in %s (%.1f MB/s); check it with: credsign backup verify %s\n",
		n, f.out, d.Round(time.Millisecond), float64(n)/1e6/max(d.Seconds(), 1e-3), f.out)
	return exitOK
}

// parseCLI parses args into fs, whose usage is usage followed by the
// flags, one line on stderr for a bad flag; done says the caller should
// return code.
func parseCLI(fs *flag.FlagSet, usage string, args []string, stderr io.Writer) (code int, done bool) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stderr)
		fs.Usage()
		return exitOK, true
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitUsage, true
	}
	return 0, false
}

// failWith returns what reports err as one line of the command name on
// stderr and returns code.
func failWith(stderr io.Writer, name string) func(code int, err error) int {
	return func(code int, err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return code
	}
}

// backupDir copies the data directory's store (not open elsewhere).
func backupDir(ctx context.Context, f backupFlags, w io.Writer) (int64, error) {
	if err := haveStore(f.dataDir); err != nil {
		return 0, err
	}
	store, _, err := openStore(ctx, serveFlags{store: "file", dataDir: f.dataDir, storeKeyFile: f.keyFile}, os.Getenv, zerolog.Nop())
	if err != nil {
		return 0, err
	}
	defer store.Close()
	snap, ok := secrets.As[secrets.Snapshotter](store)
	if !ok {
		return 0, errors.New("the store cannot be copied")
	}
	return snap.Snapshot(ctx, w, nil)
}

// haveStore refuses a data directory without a store, which opening would
// create (a mistyped directory is not an empty store to copy).
func haveStore(dir string) error {
	for _, name := range []string{filestore.DataFileName, filestore.LegacyFileName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s holds no store (no %s)", dir, filestore.DataFileName)
}

// backupServer fetches GET /v1/admin/backup into w and checks that all of
// it arrived.
func backupServer(ctx context.Context, base, token string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/admin/backup", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("asking %s for a backup: %w", base, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("the server answered %s: %s", res.Status, problemDetail(res.Body))
	}
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return n, fmt.Errorf("the backup was cut short after %d bytes: %w", n, err)
	}
	if res.ContentLength >= 0 && n != res.ContentLength {
		return n, fmt.Errorf("the backup was cut short: %d of %d bytes", n, res.ContentLength)
	}
	return n, nil
}

// problemDetail returns the detail of a problem body, or its first line.
func problemDetail(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	var p struct{ Detail string }
	if err := json.Unmarshal(b, &p); err == nil && p.Detail != "" {
		return p.Detail
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

// writeNewFile writes what fill writes to a new file at path (mode 0600):
// to a temporary file beside it first, synced and then linked into place,
// so that path never holds a partial copy and an existing file is kept.
func writeNewFile(path string, fill func(io.Writer) (int64, error)) (int64, error) {
	if _, err := os.Lstat(path); err == nil {
		return 0, fmt.Errorf("%s exists; give a new file", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".part-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := fill(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	return n, err
}

// verifyUsage is the help of `credsign backup verify`.
const verifyUsage = "usage: credsign backup verify [--key-file K] FILE\n\nOpens a copy of the backup FILE with the key (the same checks as the server at\nstart), reads and authenticates every record, checks the token index, and prints\nthe count of each kind of record. FILE is not changed. Exits 1 if anything fails.\n\nflags:"

// runBackupVerify is `credsign backup verify FILE`.
func runBackupVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("credsign backup verify", flag.ContinueOnError)
	keyFile := fs.String("key-file", "", "the store's key file (else CREDSIGN_STORE_KEY)")
	if code, done := parseCLI(fs, verifyUsage, args, stderr); done {
		return code
	}
	fail := failWith(stderr, fs.Name())
	if fs.NArg() != 1 {
		return fail(exitUsage, errors.New("give one FILE"))
	}
	key, err := cliStoreKey(*keyFile)
	if err != nil {
		return fail(exitUsage, err)
	}
	defer clear(key)
	start := time.Now()
	counts, err := filestore.VerifyBackup(ctx, fs.Arg(0), key)
	if err != nil {
		return fail(exitError, err)
	}
	fmt.Fprintf(stdout, "%s: ok in %s: %s\n", fs.Arg(0), time.Since(start).Round(time.Millisecond), formatCounts(counts))
	return exitOK
}

// formatCounts writes counts as "devices 3, groups 1, tokens 5, keys 2".
func formatCounts(c filestore.Counts) string {
	parts := make([]string, 0, len(secrets.Kinds))
	for _, k := range []secrets.Kind{secrets.KindDevice, secrets.KindGroup, secrets.KindToken, secrets.KindKey} {
		parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
	}
	return strings.Join(parts, ", ")
}

// cliStoreKey reads a store key from file, else CREDSIGN_STORE_KEY; neither
// is an error.
func cliStoreKey(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading the key file: %w", err)
		}
		defer clear(b)
		key, err := filestore.ParseKey(b)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", file, err)
		}
		return key, nil
	}
	key, err := filestore.KeyFromEnv()
	if err == nil && key == nil {
		err = fmt.Errorf("no key: give --key-file (the %s of the store that was backed up) or set %s", filestore.KeyFileName, filestore.EnvKey)
	}
	return key, err
}

// restoreUsage is the help of `credsign restore`.
const restoreUsage = "usage: credsign restore --data-dir DIR [--key-file K] [--force] FILE\n\nChecks the backup FILE as 'credsign backup verify' does, then installs it as\nthe store of DIR. A store already in DIR is refused unless --force, and never\nreplaced while a server has it open. Start the server on DIR afterwards.\n\nflags:"

// runRestore is `credsign restore`.
func runRestore(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("credsign restore", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "the data directory to install the backup in (required)")
	keyFile := fs.String("key-file", "", "the store's key file (else CREDSIGN_STORE_KEY, else the key file in --data-dir); copied into --data-dir when it has none")
	replace := fs.Bool("force", false, "replace the store in --data-dir (kept beside it as store.db.replaced-TIME); refused while a server has it open")
	if code, done := parseCLI(fs, restoreUsage, args, stderr); done {
		return code
	}
	fail := failWith(stderr, fs.Name())
	if fs.NArg() != 1 || *dataDir == "" {
		return fail(exitUsage, errors.New("give --data-dir and one FILE"))
	}
	cfg := filestore.Config{Dir: *dataDir}
	if *keyFile != "" || os.Getenv(filestore.EnvKey) != "" {
		key, err := cliStoreKey(*keyFile)
		if err != nil {
			return fail(exitUsage, err)
		}
		defer clear(key)
		cfg.Key = key
	}
	counts, err := filestore.Restore(ctx, fs.Arg(0), cfg, *replace)
	if err != nil {
		return fail(exitError, err)
	}
	fmt.Fprintf(stdout, "restored %s into %s: %s\n", fs.Arg(0), *dataDir, formatCounts(counts))
	keyPath := filepath.Join(*dataDir, filestore.KeyFileName)
	if *keyFile != "" {
		if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
			if err := filestore.WriteKeyFile(keyPath, cfg.Key); err != nil {
				return fail(exitError, err)
			}
			fmt.Fprintf(stdout, "copied the key to %s\n", keyPath)
		}
	}
	return exitOK
}
