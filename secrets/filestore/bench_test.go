package filestore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/secrets/storetest"
)

// openBench opens a store in a temporary directory, closed when b ends.
func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// benchDevice is an aliyun device id with a fresh secret and a device
// token whose hash is storetest.Hash(id).
func benchDevice(id string) secrets.DevicePut {
	return secrets.DevicePut{
		Device: secrets.Device{ID: id, Cloud: "aliyun", Params: map[string]any{"productKey": "pk", "deviceName": id}, Secret: storetest.NewSecret()},
		Token:  &secrets.Token{ID: "tok-" + id, Hash: storetest.Hash(id), Role: secrets.RoleDevice, DeviceID: id},
	}
}

// putDevices writes puts in one PutDevices call and fails b on any error.
func putDevices(b *testing.B, s *Store, puts []secrets.DevicePut) {
	b.Helper()
	for _, r := range s.PutDevices(context.Background(), puts) {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

// BenchmarkRegister registers devices as the API does, one PutDevice and
// one PutToken each, from 32 goroutines per CPU (b.SetParallelism), with
// every write durable: the rate is bound by fsync, shared by group commit.
func BenchmarkRegister(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("dev-%09d", n.Add(1))
			p := benchDevice(id)
			if _, err := s.PutDevice(ctx, p.Device, 0); err != nil {
				b.Error(err)
				return
			}
			if err := s.PutToken(ctx, *p.Token); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkIssuanceReads is the store's part of a cold issuance: the
// caller's token by hash, then its device, among 10,000 devices.
func BenchmarkIssuanceReads(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	const devices = 10000
	puts := make([]secrets.DevicePut, devices)
	for i := range puts {
		id := fmt.Sprintf("dev-%05d", i)
		puts[i] = secrets.DevicePut{Device: secrets.Device{ID: id, Cloud: "aliyun", Secret: "x"},
			Token: &secrets.Token{ID: "tok-" + id, Hash: storetest.Hash(id), Role: secrets.RoleDevice, DeviceID: id}}
	}
	putDevices(b, s, puts)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			t, err := s.TokenByHash(ctx, storetest.Hash(fmt.Sprintf("dev-%05d", i%devices)))
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := s.GetDevice(ctx, t.DeviceID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBulkImport writes devices with their tokens through PutDevices
// in batches of 1,000, as an NDJSON import would.
func BenchmarkBulkImport(b *testing.B) {
	s := openBench(b)
	const batch = 1000
	puts := make([]secrets.DevicePut, 0, batch)
	flush := func() {
		putDevices(b, s, puts)
		puts = puts[:0]
	}
	for i := range b.N {
		id := fmt.Sprintf("dev-%09d", i)
		puts = append(puts, benchDevice(id))
		if len(puts) == batch {
			flush()
		}
	}
	flush()
	st := s.db.Stats()
	b.Logf("commits %d, tx stats: write time %v, spill %v, rebalance %v, writes %d", s.w.commits.Load(), st.TxStats.GetWriteTime(), st.TxStats.GetSpillTime(), st.TxStats.GetRebalanceTime(), st.TxStats.GetWrite())
}

// BenchmarkOpen opens a data file of 100,000 devices with their tokens
// (300,000 records): Open checks the tally of every record.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	const devices, batch = 100_000, 1000
	for i := 0; i < devices; i += batch {
		puts := make([]secrets.DevicePut, batch)
		for j := range puts {
			puts[j] = benchDevice(fmt.Sprintf("dev-%09d", i+j))
		}
		putDevices(b, s, puts)
	}
	s.Close()
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
