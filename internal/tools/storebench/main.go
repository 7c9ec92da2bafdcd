// Command storebench measures the embedded store (secrets/filestore) at
// fleet scale, printing one line per measure:
//
//	go run ./internal/tools/storebench -mode register -devices 100000 -concurrency 32
//	go run ./internal/tools/storebench -mode fleet -devices 1000000
//
// register: every device is one PutDevice and one PutToken, from
// -concurrency workers, as a provisioning system registering through the
// API would; printed with the rate of the same workers writing records of
// the same size to a bare bbolt file, one db.Update (and fsync) per write, and
// through bbolt's db.Batch, in the same run.
//
// fleet: fills a store with -devices devices and their tokens through
// PutDevices (the bulk write), closes it, and reports the bulk rate; then a
// fresh process (storebench -mode open) reports the open time, disk bytes
// per device, and its RSS after opening and after -lookups random
// issuance-path reads (TokenByHash then GetDevice).
//
// The data directory is a temporary one under -dir, removed at the end.
package main

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/filestore"
)

func main() {
	mode := flag.String("mode", "register", "register or fleet (open: the second half of fleet)")
	data := flag.String("data", "", "the store to open (-mode open; its key in "+filestore.EnvKey+")")
	devices := flag.Int("devices", 100000, "number of devices")
	concurrency := flag.Int("concurrency", 32, "concurrent writers (register)")
	lookups := flag.Int("lookups", 100000, "random reads after opening (fleet)")
	baseline := flag.Int("baseline", 20000, "writes of each bare-bbolt baseline (register); 0 skips them")
	dir := flag.String("dir", os.TempDir(), "where to make the temporary data directory")
	flag.Parse()
	if flag.NArg() > 0 || *devices <= 0 || *concurrency <= 0 {
		fmt.Fprintln(os.Stderr, "usage: storebench [-mode register|fleet] [-devices N] [-concurrency C] [-lookups N] [-baseline N] [-dir DIR]")
		os.Exit(2)
	}
	if *mode == "open" {
		if err := openFleet(*data, *devices, *lookups); err != nil {
			fail(err)
		}
		return
	}
	work, err := os.MkdirTemp(*dir, "storebench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(work)
	switch *mode {
	case "register":
		err = register(work, *devices, *concurrency, *baseline)
	case "fleet":
		err = fleet(work, *devices, *lookups)
	default:
		fmt.Fprintf(os.Stderr, "storebench: unknown -mode %q (register or fleet)\n", *mode)
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "storebench:", err)
	os.Exit(1)
}

func id(i int) string { return fmt.Sprintf("dev-%08d", i) }

func hash(text string) string {
	h := sha256.Sum256([]byte(text))
	return hex.EncodeToString(h[:])
}

// device returns a device document of the size the API stores.
func device(i int) secrets.Device {
	return secrets.Device{
		ID: id(i), Cloud: "aliyun",
		Params: map[string]any{"productKey": "a1B2c3D4e5F", "deviceName": id(i), "region": "cn-shanghai", "secureMode": 2},
		Secret: crand.Text() + crand.Text(),
		Labels: map[string]string{"site": "sz-factory-3", "batch": "2026-11"},
	}
}

func token(i int) secrets.Token {
	return secrets.Token{ID: "tok-" + id(i), Hash: hash(id(i)), Role: secrets.RoleDevice, DeviceID: id(i), CreatedAt: time.Now()}
}

// register registers n devices from c workers and prints the rate overall
// and over the last tenth, then the bare-bbolt baselines.
func register(dir string, n, c, baseline int) error {
	s, err := filestore.Open(filestore.Config{Dir: filepath.Join(dir, "store")})
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	var next atomic.Int64
	var lastTenthStart atomic.Int64
	start := time.Now()
	err = parallel(c, func() error {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return nil
			}
			if i == n-n/10 {
				lastTenthStart.Store(time.Now().UnixNano())
			}
			if _, err := s.PutDevice(ctx, device(i), 0); err != nil {
				return err
			}
			if err := s.PutToken(ctx, token(i)); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return err
	}
	took := time.Since(start)
	lastTenth := time.Since(time.Unix(0, lastTenthStart.Load()))
	fmt.Printf("register: %d devices (PutDevice+PutToken), %d concurrent: %.0f devices/s overall, %.0f devices/s over the last %d\n",
		n, c, float64(n)/took.Seconds(), float64(n/10)/lastTenth.Seconds(), n/10)
	if baseline == 0 {
		return nil
	}
	size := len(device(0).Secret) + 250 // about a sealed record
	for _, how := range []string{"Update", "Batch"} {
		rate, err := bareBolt(filepath.Join(dir, "bare-"+how+".db"), how, baseline, c, size)
		if err != nil {
			return err
		}
		fmt.Printf("baseline: bare bbolt, %d writes of %d bytes, %d concurrent, one db.%s each: %.0f writes/s (%.0f devices/s at two writes per device)\n",
			baseline, size, c, how, rate, rate/2)
	}
	return nil
}

// bareBolt writes n values of size bytes to a bare bbolt file from c
// workers, each write its own db.Update or db.Batch, and returns writes/s.
func bareBolt(path, how string, n, c, size int) (float64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	write := db.Update
	if how == "Batch" {
		write = db.Batch
	}
	var next atomic.Int64
	start := time.Now()
	err = parallel(c, func() error {
		val := make([]byte, size)
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return nil
			}
			crand.Read(val)
			err := write(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("devices"))
				if err != nil {
					return err
				}
				return b.Put([]byte(id(i)), val)
			})
			if err != nil {
				return err
			}
		}
	})
	return float64(n) / time.Since(start).Seconds(), err
}

// fleet fills a store with n devices and tokens, then measures opening and
// reading it.
func fleet(dir string, n, lookups int) error {
	path := filepath.Join(dir, "store")
	key := make([]byte, filestore.KeySize)
	crand.Read(key)
	cfg := filestore.Config{Dir: path, Key: key}
	s, err := filestore.Open(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	const chunk = 10000
	start := time.Now()
	for lo := 0; lo < n; lo += chunk {
		puts := make([]secrets.DevicePut, 0, chunk)
		for i := lo; i < min(lo+chunk, n); i++ {
			t := token(i)
			puts = append(puts, secrets.DevicePut{Device: device(i), IfVersion: 0, Token: &t})
		}
		for _, r := range s.PutDevices(ctx, puts) {
			if r.Err != nil {
				return r.Err
			}
		}
	}
	took := time.Since(start)
	fmt.Printf("fleet: bulk write (PutDevices, device and token per item): %d devices in %v, %.0f devices/s\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	if err := s.Close(); err != nil {
		return err
	}
	// The rest in a fresh process, so that its RSS is that of a server
	// starting on this data, not of the one that wrote it.
	cmd := exec.Command(os.Args[0], "-mode", "open", "-data", path, "-devices", strconv.Itoa(n), "-lookups", strconv.Itoa(lookups))
	cmd.Env = append(os.Environ(), filestore.EnvKey+"="+filestore.FormatKey(key))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// openFleet opens the store fleet wrote and reads from it.
func openFleet(path string, n, lookups int) error {
	key, err := filestore.KeyFromEnv()
	if err != nil || key == nil {
		return fmt.Errorf("-mode open needs the key in %s (%v)", filestore.EnvKey, err)
	}
	ctx := context.Background()
	fi, err := os.Stat(filepath.Join(path, filestore.DataFileName))
	if err != nil {
		return err
	}
	rssBefore := rss()
	start := time.Now()
	s, err := filestore.Open(filestore.Config{Dir: path, Key: key})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.GetDevice(ctx, id(n/2)); err != nil {
		return err
	}
	open := time.Since(start)
	fmt.Printf("fleet: %d devices and %d tokens: open (and first read) %v; data file %d bytes, %.0f bytes per device (with its token)\n",
		n, n, open.Round(time.Microsecond), fi.Size(), float64(fi.Size())/float64(n))
	fmt.Printf("fleet: RSS of a fresh process %s before open; %s after open\n", rssBefore, rss())
	start = time.Now()
	for range lookups {
		i := rand.IntN(n)
		tok, err := s.TokenByHash(ctx, hash(id(i)))
		if err != nil {
			return err
		}
		if _, err := s.GetDevice(ctx, tok.DeviceID); err != nil {
			return err
		}
	}
	took := time.Since(start)
	fmt.Printf("fleet: %d random TokenByHash+GetDevice: %v each; RSS after %s\n", lookups, (took / time.Duration(lookups)).Round(100*time.Nanosecond), rss())
	return nil
}

// parallel runs fn on c goroutines and returns the first error.
func parallel(c int, fn func() error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}

// rss returns the process's resident set size from /proc: the total, its
// anonymous part (Go heap, stacks) and its file part (pages of the
// memory-mapped data file, which the kernel can drop at any time), or "?".
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fmt.Sprintf("%s (anonymous %s, file %s)", fields["VmRSS"], fields["RssAnon"], fields["RssFile"])
}
