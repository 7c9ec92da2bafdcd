package filestore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/storetest"
)

// envCrashChild makes the test binary the writer of TestKillDuringWrites.
const envCrashChild = "FILESTORE_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashChild); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashSecret is the secret the crash writer gives device id, so that the
// parent can check each record whole.
func crashSecret(id string) string {
	h := sha256.Sum256([]byte("secret of " + id))
	return hex.EncodeToString(h[:])
}

// crashChild writes devices and their tokens from 32 goroutines until it is
// killed, printing "D id" once PutDevice returned and "T id" once PutToken
// returned: those are the acknowledged writes.
func crashChild(dir string) {
	s, err := Open(Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%02d-%07d", w, i)
				d := secrets.Device{ID: id, Cloud: "aliyun", Params: map[string]any{"n": i, "pad": strings.Repeat("p", i%300)}, Secret: crashSecret(id)}
				if _, err := s.PutDevice(ctx, d, 0); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				os.Stdout.WriteString("D " + id + "\n")
				tok := secrets.Token{ID: "t-" + id, Hash: storetest.Hash(id), Role: secrets.RoleDevice, DeviceID: id, CreatedAt: time.Now()}
				if err := s.PutToken(ctx, tok); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				os.Stdout.WriteString("T " + id + "\n")
			}
		}()
	}
	wg.Wait()
}

// TestKillDuringWrites runs a process writing as fast as it can, kills it
// with SIGKILL in the middle, reopens the store and checks that every
// acknowledged write is there and every record there is whole.
func TestKillDuringWrites(t *testing.T) {
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envCrashChild+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[string]bool{} // "D id" and "T id"
		sc := bufio.NewScanner(out)
		killAt := 500 + 700*round
		for sc.Scan() {
			acked[sc.Text()] = true
			if len(acked) == killAt {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		cmd.Wait()
		if len(acked) < killAt {
			t.Fatalf("writer died after %d acks: %s", len(acked), stderr.String())
		}

		s := open(t, Config{Dir: dir})
		ctx := context.Background()
		for line := range acked {
			kind, id, _ := strings.Cut(line, " ")
			switch kind {
			case "D":
				d, err := s.GetDevice(ctx, id)
				if err != nil || d.Secret != crashSecret(id) {
					t.Fatalf("round %d: acknowledged device %s: %v", round, id, err)
				}
			case "T":
				if tok, err := s.TokenByHash(ctx, storetest.Hash(id)); err != nil || tok.DeviceID != id {
					t.Fatalf("round %d: acknowledged token of %s: %v", round, id, err)
				}
			}
		}
		// Nothing half-written: every device present reads whole, and
		// bbolt's own consistency check passes.
		present := 0
		for after := ""; ; {
			page, err := s.ListDevices(ctx, secrets.ListOptions{After: after, Limit: 500})
			if err != nil {
				t.Fatalf("round %d: listing after the crash: %v", round, err)
			}
			for _, d := range page.Devices {
				if d.Secret != crashSecret(d.ID) || d.Version != 1 {
					t.Fatalf("round %d: device %s not whole", round, d.ID)
				}
				present++
			}
			if after = page.Next; after == "" {
				break
			}
		}
		err = s.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: bbolt check: %v", round, err)
		}
		t.Logf("round %d: killed after %d acknowledged writes; %d devices present", round, len(acked), present)
		s.Close()
	}
}
