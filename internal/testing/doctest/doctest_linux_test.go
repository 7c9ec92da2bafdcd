//go:build linux

package doctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/credsign/credsign/internal/testing/vaulttest"
)

// initEnv, set to a script's path, makes the test binary a namespace's
// first process: it brings the loopback interface up and becomes bash
// running the script (see TestMain).
const initEnv = "CREDSIGN_DOCTEST_INIT"

// fileTimeout bounds the run of one document; a cold first `go run` or
// `make build` is most of it.
const fileTimeout = 8 * time.Minute

func TestMain(m *testing.M) {
	if script := os.Getenv(initEnv); script != "" {
		nsInit(script) // does not return
	}
	os.Exit(m.Run())
}

// nsInit runs as process 1 of a fresh PID and network namespace: it brings
// up that namespace's own loopback (so a document can listen on
// 127.0.0.1:8080 while anything else on the machine does too) and execs bash
// on script. When bash exits or is killed, the kernel kills every process
// the document left running in the namespace.
func nsInit(script string) {
	if err := loopbackUp(); err != nil {
		fmt.Fprintf(os.Stderr, "doctest: bringing up the namespace's loopback: %v\n", err)
		os.Exit(125)
	}
	bash, err := exec.LookPath("bash")
	if err == nil {
		env := make([]string, 0, len(os.Environ()))
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, initEnv+"=") {
				env = append(env, kv)
			}
		}
		err = syscall.Exec(bash, []string{"bash", script}, env)
	}
	fmt.Fprintf(os.Stderr, "doctest: running bash: %v\n", err)
	os.Exit(125)
}

// loopbackUp sets the IFF_UP flag of "lo" in the current network namespace.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr struct { // struct ifreq with its ifr_flags member
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(ifr.name[:], "lo")
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return fmt.Errorf("SIOCGIFFLAGS: %w", e)
	}
	ifr.flags |= syscall.IFF_UP
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return fmt.Errorf("SIOCSIFFLAGS: %w", e)
	}
	return nil
}

// harness is what every document's run shares: the repository's files, the
// binaries built once, and the optional servers found on this machine.
type harness struct {
	root  string   // the repository
	files []string // its files (tracked, or untracked and not ignored)
	tmp   string
	env   []string // the environment of every document's shell
	have  map[string]bool
	bash  string
	// isolated is true when each document runs in namespaces of its own;
	// false where the kernel refuses them (no root, no unprivileged user
	// namespaces): then documents share the host's loopback.
	isolated bool
	// timeout bounds the run of one document.
	timeout time.Duration
}

// TestDocs runs, for README.md and each docs/*.md in turn, the shell blocks
// a reader is told to run, in order, in one bash whose working directory is
// a fresh copy of the repository (a reader who cloned it), with credsign,
// credsign-agent and credsign-emulator on PATH, in network and PID
// namespaces of its own: the documented ports (127.0.0.1:8080, 8200, 18883)
// are the document's alone, and every server a block started in the
// background is killed when the document ends. (Where the kernel refuses
// namespaces, documents share the host's loopback and their process group
// is killed.) A command that fails (bash -e -o pipefail)
// fails the document with its block, line and output; an output block marked
// with <!-- doctest: output --> is checked against what its block printed.
func TestDocs(t *testing.T) {
	root, names, docs := loadDocs(t)
	h := newHarness(t, root)
	var ran, skipped int
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			r, s, err := h.runDoc(t, name, docs[i])
			ran += r
			skipped += s
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Logf("%d documents: %d shell blocks run, %d skipped", len(names), ran, skipped)
}

// TestAllDocsInOneShell runs README.md and then each docs/*.md, in that
// order, in one shell and one copy of the repository, as a reader who
// keeps the terminal of one document open for the next: what a document
// leaves running, exported or written must not break a later one (its
// own port, its own data directory, a stop of what it started). A
// document that needs what this machine lacks is left out (and fails the
// test where its variable requires it).
func TestAllDocsInOneShell(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every document")
	}
	root, names, docs := loadDocs(t)
	h := newHarness(t, root)
	var parts []part
	for i, name := range names {
		if need, how, require := h.missingNeed(docs[i]); need != "" {
			if require {
				t.Fatalf("%s needs %s, which is not on this machine (%s)", name, need, how)
			}
			t.Logf("%s left out: it needs %s (%s)", name, need, how)
			continue
		}
		parts = append(parts, part{name, docs[i]})
	}
	ran, skipped, err := h.runDocs(t, "all documents in one shell", parts)
	t.Logf("%d documents in one shell: %d shell blocks run, %d skipped", len(parts), ran, skipped)
	if err != nil {
		t.Fatal(err)
	}
}

// loadDocs parses README.md and docs/*.md (in that order) of the
// repository.
func loadDocs(t *testing.T) (root string, names []string, docs []*Doc) {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	names = []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		names = append(names, filepath.Join("docs", filepath.Base(m)))
	}
	docs = make([]*Doc, len(names))
	for i, name := range names {
		src, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if docs[i], err = Parse(src); err != nil {
			t.Fatalf("%s:%v", name, strings.TrimPrefix(err.Error(), "line "))
		}
	}
	return root, names, docs
}

func newHarness(t *testing.T, root string) *harness {
	t.Helper()
	h := &harness{root: root, tmp: t.TempDir(), have: map[string]bool{}, timeout: fileTimeout}

	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("listing the repository's files with git: %v", err)
	}
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			h.files = append(h.files, f)
		}
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go on PATH: %v", err)
	}
	if h.bash, err = exec.LookPath("bash"); err != nil {
		t.Fatalf("no bash on PATH: %v", err)
	}
	bin := filepath.Join(h.tmp, "bin")
	// The flags of `make build`, so a document's own build finds them cached.
	start := time.Now()
	build := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin+"/",
		"./cmd/credsign", "./cmd/credsign-agent", "./cmd/credsign-emulator")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the binaries: %v\n%s", err, out)
	}
	t.Logf("built credsign, credsign-agent, credsign-emulator in %v", time.Since(start).Round(time.Millisecond))

	h.env = []string{
		"PATH=" + bin + ":" + filepath.Dir(goBin) + ":" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"LANG=C.UTF-8",
		"TERM=dumb",
	}
	// The machine's Go settings (caches, proxy), so `go run` works as it
	// would for this machine's user; nothing of credsign's or Vault's.
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GO") || strings.HasPrefix(kv, "USER=") {
			h.env = append(h.env, kv)
		}
	}

	// Vault, as a reader who ran scripts/vault.sh has it: `vault` on PATH
	// and the cache scripts/vault.sh looks at, so it answers at once.
	if vault, err := vaulttest.Binary(); err == nil {
		cache := filepath.Join(h.tmp, "cache")
		if err := os.MkdirAll(filepath.Join(cache, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, link := range []string{filepath.Join(bin, "vault"), filepath.Join(cache, "bin", "vault-"+vaulttest.Version)} {
			if err := os.Symlink(vault, link); err != nil {
				t.Fatal(err)
			}
		}
		h.env = append(h.env, vaulttest.EnvCache+"="+cache)
		h.have["vault"] = true
	}
	probe := exec.Command(os.Args[0])
	probe.Env = append(h.env, initEnv+"="+os.DevNull)
	probe.SysProcAttr = namespaces()
	if out, err := probe.CombinedOutput(); err != nil {
		t.Logf("no namespaces for the documents (%v %s): they share the host's loopback, "+
			"where the ports they use must be free, and only what stays in their process group is stopped", err, out)
	} else {
		h.isolated = true
	}
	if _, err := exec.LookPath("mosquitto"); err == nil {
		h.have["mosquitto"] = true
	} else if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		h.have["mosquitto"] = true
	}
	return h
}

// copyRepo copies the repository's files into dir.
func (h *harness) copyRepo(dir string) error {
	for _, f := range h.files {
		src, dst := filepath.Join(h.root, f), filepath.Join(dir, f)
		fi, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		} else if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, dst)
			}
			if err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// How a reader gets what <!-- doctest: needs NAME --> names, and the
// variable that makes its absence a failure.
var needs = map[string]struct{ how, require string }{
	"vault":     {"scripts/vault.sh builds it", vaulttest.EnvRequire},
	"mosquitto": {"apt-get install -y mosquitto", "CREDSIGN_REQUIRE_MOSQUITTO"},
}

// part is one document of a run: its name and its blocks.
type part struct {
	name string
	doc  *Doc
}

// blockRef is a block of a run: the part and the index in its Blocks.
type blockRef struct{ part, block int }

// missingNeed returns what doc needs that this machine lacks, with how a
// reader gets it, or "" when it has all; require says the variable that
// makes its absence a failure is set.
func (h *harness) missingNeed(doc *Doc) (need, how string, require bool) {
	for _, n := range doc.Needs {
		if !h.have[n] {
			return n, needs[n].how, os.Getenv(needs[n].require) == "1"
		}
	}
	return "", "", false
}

// runDoc runs one document's shell blocks and checks its output blocks. It
// returns how many shell blocks it ran and skipped, and an error saying
// which block failed, where, and what it printed.
func (h *harness) runDoc(t *testing.T, name string, doc *Doc) (ran, skipped int, err error) {
	if need, how, require := h.missingNeed(doc); need != "" {
		if require {
			return 0, 0, fmt.Errorf("%s needs %s, which is not on this machine (%s=1; %s)", name, need, needs[need].require, how)
		}
		t.Skipf("%s needs %s, which is not on this machine (%s)", name, need, how)
	}
	return h.runDocs(t, name, []part{{name, doc}})
}

// runDocs runs the shell blocks of parts in order in one shell, one copy
// of the repository, as a reader who follows one document after another
// in one terminal, and checks their output blocks. label names the run.
func (h *harness) runDocs(t *testing.T, label string, parts []part) (ran, skipped int, err error) {
	var runs []blockRef // the blocks to run, in order
	nth := map[blockRef]int{}
	for p, pt := range parts {
		for i, b := range pt.doc.Blocks {
			if !b.Run {
				continue
			}
			r := blockRef{p, i}
			nth[r] = len(nth) + 1
			if b.Skip != "" {
				skipped++
				t.Logf("%s:%d: shell block %d skipped: %s", pt.name, b.Line, nth[r], b.Skip)
				continue
			}
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		t.Logf("%s: no shell block to run (%d skipped)", label, skipped)
		return 0, skipped, nil
	}
	name := label

	// A directory of its own for each run: the same document name may run
	// more than once in one harness (the harness's own tests do).
	work, err := os.MkdirTemp(h.tmp, strings.NewReplacer("/", "_", " ", "_").Replace(name)+"-")
	if err != nil {
		t.Fatal(err)
	}
	repo, blocks, tmp := filepath.Join(work, "repo"), filepath.Join(work, "blocks"), filepath.Join(work, "tmp")
	for _, d := range []string{repo, blocks, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.copyRepo(repo); err != nil {
		t.Fatalf("copying the repository: %v", err)
	}

	// One bash runs the blocks in order, as a reader types them into one
	// terminal: variables, exports and cd carry over. Each block's output
	// goes to files of its own; the ERR trap records where a command failed.
	var driver strings.Builder
	fmt.Fprintf(&driver, "set -eEo pipefail\n"+
		"trap 'printf \"%%s\\t%%s\\t%%s\\t%%s\\n\" \"$?\" \"$LINENO\" \"${BASH_SOURCE[0]}\" \"$BASH_COMMAND\" >%q' ERR\n"+
		"cd %q\n", filepath.Join(blocks, "failed"), repo)
	for _, r := range runs {
		n := nth[r]
		f := filepath.Join(blocks, strconv.Itoa(n))
		if err := os.WriteFile(f+".sh", []byte(parts[r.part].doc.Blocks[r.block].Code), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&driver, "echo %d >%q\n. %q >%q 2>%q\n", n, filepath.Join(blocks, "current"), f+".sh", f+".out", f+".err")
	}
	fmt.Fprintf(&driver, "echo done >%q\n", filepath.Join(blocks, "current"))
	script := filepath.Join(work, "driver.sh")
	if err := os.WriteFile(script, []byte(driver.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	timeout := h.timeout * time.Duration(len(parts))
	if dl, ok := t.Deadline(); ok && time.Until(dl)-30*time.Second < timeout {
		timeout = time.Until(dl) - 30*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	shellLog, err := os.Create(filepath.Join(work, "shell.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer shellLog.Close()
	var cmd *exec.Cmd
	if h.isolated {
		cmd = exec.CommandContext(ctx, os.Args[0])
		cmd.Env = append(h.env, "TMPDIR="+tmp, initEnv+"="+script)
		cmd.SysProcAttr = namespaces()
	} else {
		cmd = exec.CommandContext(ctx, h.bash, script)
		cmd.Env = append(h.env, "TMPDIR="+tmp)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	cmd.Dir = repo
	cmd.Stdout, cmd.Stderr = shellLog, shellLog
	// The process group: everything the document started, also where
	// there is no PID namespace to end with its shell.
	killGroup := func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Cancel = killGroup
	start := time.Now()
	err = cmd.Run()
	if cmd.Process != nil {
		killGroup()
	}
	elapsed := time.Since(start).Round(time.Millisecond)

	current, _ := os.ReadFile(filepath.Join(blocks, "current"))
	cur := strings.TrimSpace(string(current))
	if cur == "" {
		return 0, skipped, fmt.Errorf("%s: starting its shell (in namespaces of its own: %v): %v\n%s",
			name, h.isolated, err, tail(shellLog.Name()))
	}
	if err != nil || cur != "done" {
		n, _ := strconv.Atoi(cur)
		var b Block
		in := name
		for r, k := range nth {
			if k == n {
				b, in = parts[r.part].doc.Blocks[r.block], parts[r.part].name
			}
		}
		where := fmt.Sprintf("%s: shell block %d (line %d)", in, n, b.Line)
		if len(parts) > 1 {
			where = label + ": " + where
		}
		f := filepath.Join(blocks, cur)
		switch failed, _ := os.ReadFile(filepath.Join(blocks, "failed")); {
		case ctx.Err() != nil:
			where += fmt.Sprintf(" did not finish within %v", timeout.Round(time.Second))
		case len(failed) > 0:
			// status, line, file, command (of the failing command, which
			// may be in a function an earlier block defined)
			rec := strings.SplitN(strings.TrimRight(string(failed), "\n"), "\t", 4)
			for len(rec) < 4 {
				rec = append(rec, "")
			}
			line, _ := strconv.Atoi(rec[1])
			if rec[2] == f+".sh" {
				where += fmt.Sprintf(": exit status %s at line %d: %s", rec[0], b.Line+line, codeLine(b.Code, line))
			} else {
				where += fmt.Sprintf(": exit status %s in a function, running %q", rec[0], rec[3])
			}
		default:
			where += fmt.Sprintf(": %v", err)
		}
		return len(runs), skipped, fmt.Errorf("%s\n--- stdout ---\n%s--- stderr ---\n%s--- shell ---\n%s%s", where,
			tail(f+".out"), tail(f+".err"), tail(shellLog.Name()), logsSince(start, repo, tmp))
	}
	t.Logf("%s: %d shell blocks run in %v, %d skipped", name, len(runs), elapsed, skipped)

	var errs []error
	for p, pt := range parts {
		for _, b := range pt.doc.Blocks {
			if b.Output == 0 {
				continue
			}
			src := pt.doc.Blocks[b.Output-1]
			if src.Skip != "" {
				t.Logf("%s:%d: output not checked: its shell block (line %d) is skipped", pt.name, b.Line, src.Line)
				continue
			}
			k := nth[blockRef{p, b.Output - 1}]
			got, err := os.ReadFile(filepath.Join(blocks, strconv.Itoa(k)+".out"))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckOutput(b, got); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: output of shell block %d (line %d): %w\n--- stdout ---\n%s", pt.name, b.Line,
					k, src.Line, err, cut(got)))
			}
		}
	}
	return len(runs), skipped, errors.Join(errs...)
}

// namespaces puts the document's shell in new PID and network namespaces
// (as root; otherwise in a user namespace too, mapping the caller's ids)
// and a process group of its own, and kills it if the test process dies.
func namespaces() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if uid, gid := os.Getuid(), os.Getgid(); uid != 0 {
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	}
	return a
}

// logsSince returns the ends of the *.log files under dirs written since
// start: where a document sends the output of the servers it starts, which
// is often why a wait for one never ends.
func logsSince(start time.Time, dirs ...string) string {
	var b strings.Builder
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
				return nil
			}
			if fi, err := d.Info(); err == nil && fi.ModTime().After(start) {
				fmt.Fprintf(&b, "--- %s ---\n%s", strings.TrimPrefix(path, dir+"/"), tail(path))
			}
			return nil
		})
	}
	return b.String()
}

// codeLine returns line n (1-based) of code, or "" when there is none.
func codeLine(code string, n int) string {
	lines := strings.Split(code, "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return strings.TrimSpace(lines[n-1])
}

// tail returns the end of a file for a failure message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(none)\n"
	}
	return cut(b)
}

func cut(b []byte) string {
	const max = 8 << 10
	if len(b) > max {
		b = append([]byte("…\n"), b[len(b)-max:]...)
	}
	if len(b) > 0 && !bytes.HasSuffix(b, []byte("\n")) {
		b = append(b, '\n')
	}
	return string(b)
}

// TestHarness runs the harness on small documents: it must report a failing
// command with its block and line, carry state from block to block, give
// each document 127.0.0.1:8080 although the host's is taken, kill what a
// document left running, and check output blocks.
func TestHarness(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, root)
	// The host's 8080 is taken: by this listener, or by whatever holds it.
	if ln, err := net.Listen("tcp", "127.0.0.1:8080"); err == nil {
		defer ln.Close()
	}
	alive := filepath.Join(t.TempDir(), "alive")

	tests := []struct {
		name          string
		doc           string
		ran, skipped  int
		isolated      bool          // the case needs namespaces
		timeout       time.Duration // of the document, when not fileTimeout
		err, notInErr []string      // substrings the error must (not) contain; none for success
	}{
		{
			name: "state carries over, a server gets 8080, the output is checked",
			doc: "```sh\nX=carried\ncd \"$(mktemp -d)\"\n" +
				"credsign serve --dev --addr 127.0.0.1:8080 >/dev/null 2>serve.log &\n" +
				"(while :; do date +%s%N >" + alive + "; sleep 0.05; done) &\n" +
				"until curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1; do sleep 0.1; done\n```\n" +
				"```sh\necho \"$X in $(basename \"$PWD\")\"\ncurl -sS http://127.0.0.1:8080/v1/clouds\n```\n" +
				"<!-- doctest: output -->\n```text\ncarried in tmp.…\n{\"type\":\"about:blank\",\"title\":\"Unauthorized\",\"status\":401,…}\n```\n",
			ran: 2, isolated: true,
		},
		{
			name: "a failing command names its block and line",
			doc:  "intro\n```sh\ntrue\n```\n```sh\necho before\nfalse\necho after\n```\n",
			ran:  2,
			err:  []string{"doc.md: shell block 2 (line 5): exit status 1 at line 7: false", "--- stdout ---\nbefore\n"}, notInErr: []string{"after"},
		},
		{
			name: "a wait that never ends shows the logs written",
			doc:  "```sh\necho 'listen tcp 127.0.0.1:8080: address already in use' >server.log\nsleep 1000\n```\n",
			ran:  1, timeout: 5 * time.Second,
			err: []string{"shell block 1 (line 1) did not finish within 5s", "--- server.log ---\nlisten tcp 127.0.0.1:8080: address already in use\n"},
		},
		{
			name: "a failing pipeline, in a function of an earlier block",
			doc:  "```sh\nf() { curl -sS http://127.0.0.1:1/ | cat; }\n```\n```sh\nf\n```\n",
			ran:  2,
			err:  []string{"shell block 2 (line 4): exit status 7 in a function, running \"cat\"", "Failed to connect"},
		},
		{
			name: "skipped blocks do not run",
			doc:  "<!-- doctest: skip (needs a Docker engine) -->\n```sh\nexit 3\n```\n```sh\ntrue\n```\n",
			ran:  1, skipped: 1,
		},
		{
			name: "an output of another shape",
			doc:  "```sh\necho '{\"a\":1}'\n```\n<!-- doctest: output -->\n```json\n{\"b\":1}\n```\n",
			ran:  1,
			err:  []string{"doc.md:5: output of shell block 1 (line 1): the output differs from the document's: $ lacks b; $ has a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.isolated && !h.isolated {
				t.Skip("the kernel refuses namespaces here")
			}
			doc, err := Parse([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			h.timeout = fileTimeout
			if tt.timeout != 0 {
				h.timeout = tt.timeout
			}
			ran, skipped, err := h.runDoc(t, "doc.md", doc)
			if ran != tt.ran || skipped != tt.skipped {
				t.Errorf("ran %d and skipped %d shell blocks, want %d and %d", ran, skipped, tt.ran, tt.skipped)
			}
			switch {
			case len(tt.err) == 0 && err != nil:
				t.Fatalf("runDoc: %v", err)
			case len(tt.err) > 0 && err == nil:
				t.Fatalf("runDoc succeeded, want an error containing %q", tt.err)
			}
			for _, s := range tt.err {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error lacks %q:\n%v", s, err)
				}
			}
			for _, s := range tt.notInErr {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error has %q:\n%v", s, err)
				}
			}
		})
	}

	if h.isolated {
		// The first document's background loop died with it.
		assertStopped(t, alive)
	}

	// Documents in sequence share one shell: the second sees what the
	// first set, and a failure names its document and line there.
	t.Run("documents in one shell", func(t *testing.T) {
		h.timeout = fileTimeout
		a, errA := Parse([]byte("```sh\nX=from-a\n```\n"))
		b, errB := Parse([]byte("```sh\necho \"$X\"\n```\n<!-- doctest: output -->\n```text\nfrom-a\n```\n```sh\nfalse\n```\n"))
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		ran, _, err := h.runDocs(t, "both", []part{{"a.md", a}, {"b.md", b}})
		if ran != 3 || err == nil || !strings.Contains(err.Error(), "both: b.md: shell block 3 (line 8): exit status 1 at line 9: false") {
			t.Fatalf("ran %d, error %v", ran, err)
		}
		ran, _, err = h.runDocs(t, "both", []part{{"a.md", a}, {"b.md", b}}[:1])
		if ran != 1 || err != nil {
			t.Fatalf("a.md alone: ran %d, %v", ran, err)
		}
	})

	// Without namespaces, the process group is killed.
	t.Run("without namespaces", func(t *testing.T) {
		host := *h
		host.isolated = false
		alive := filepath.Join(t.TempDir(), "alive")
		doc, err := Parse([]byte("```sh\n(while :; do date +%s%N >" + alive + "; sleep 0.05; done) &\nsleep 0.2\n```\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := host.runDoc(t, "doc.md", doc); err != nil {
			t.Fatal(err)
		}
		assertStopped(t, alive)
	})
}

// assertStopped fails the test when the file a background loop rewrites
// every 50 ms still changes.
func assertStopped(t *testing.T, alive string) {
	t.Helper()
	before, err := os.ReadFile(alive)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if after, _ := os.ReadFile(alive); !bytes.Equal(before, after) {
		t.Errorf("a process the document started in the background still runs after it ended")
	}
}
