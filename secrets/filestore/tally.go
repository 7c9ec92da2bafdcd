package filestore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	bolt "go.etcd.io/bbolt"
)

// ErrRolledBack means the records of a data file do not add up to the
// tally the file keeps of them: someone without the key put a record back
// from an earlier copy of the file (a revoked token unrevoked, an
// enrolment token's uses reset), or added or removed one. Open refuses such
// a file. A whole file put back from an earlier copy is consistent and is
// not detected (docs/store.md).
var ErrRolledBack = errors.New("records do not match the file's tally: a record was restored from an earlier copy, added or removed without the key")

// tallyKeyLabel derives the key of the record tally from the store key.
const tallyKeyLabel = "credsign filestore v2 record tally key"

// metaTally is the key of bucketMeta that holds the sealed tally.
var metaTally = []byte("tally")

// talliedBuckets are the buckets whose every record the tally covers:
// everything but meta.
var talliedBuckets = [][]byte{bucketDevices, bucketTokens, bucketTokenHashes, bucketKeys, bucketGroups}

// A tally is the XOR of HMAC-SHA256(tally key, bucket, key, value) over
// every record of talliedBuckets: a keyed multiset hash, updated in O(1)
// by each write (the old record's term out, the new one's in) and kept,
// sealed, in the same transaction. Whoever lacks the key can neither
// compute a record's term nor forge the sealed tally, so a data file with
// one record swapped for an earlier value of it (each sealed value is
// unique: a fresh nonce every time), or with a record added or removed,
// no longer adds up.
type tally [sha256.Size]byte

// newTallyMAC returns the HMAC that computes record terms.
func (c *sealer) newTallyMAC() hash.Hash { return hmac.New(sha256.New, c.tallyKey) }

// term is the contribution of one record, computed with m (newTallyMAC).
func term(m hash.Hash, bucket, key, value []byte) tally {
	m.Reset()
	var n [8]byte
	for _, part := range [][]byte{bucket, key, value} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:])
		m.Write(part)
	}
	var t tally
	m.Sum(t[:0])
	return t
}

func (t *tally) xor(u tally) {
	for i := range t {
		t[i] ^= u[i]
	}
}

// tallyState is the store's tally: sum as committed, pending in the
// transaction under way. Only the committer's goroutine (or setup, before
// it starts) touches it.
type tallyState struct {
	sum, pending tally
	mac          hash.Hash // newTallyMAC, for the writes
}

// put writes value under key in bucket, keeping the pending tally.
func (s *Store) put(tx *bolt.Tx, bucket, key, value []byte) error {
	b := tx.Bucket(bucket)
	if old := b.Get(key); old != nil {
		s.tally.pending.xor(term(s.tally.mac, bucket, key, old))
	}
	if err := b.Put(key, value); err != nil {
		return err
	}
	s.tally.pending.xor(term(s.tally.mac, bucket, key, value))
	return nil
}

// del deletes key from bucket, keeping the pending tally.
func (s *Store) del(tx *bolt.Tx, bucket, key []byte) error {
	b := tx.Bucket(bucket)
	old := b.Get(key)
	if old == nil {
		return nil
	}
	t := term(s.tally.mac, bucket, key, old)
	if err := b.Delete(key); err != nil {
		return err
	}
	s.tally.pending.xor(t)
	return nil
}

// begin starts a transaction of the committer.
func (s *Store) begin(tx *bolt.Tx) {
	packBuckets(tx)
	s.tally.pending = s.tally.sum
}

// end seals the pending tally into tx, if its writes changed it.
func (s *Store) end(tx *bolt.Tx) error {
	if s.tally.pending == s.tally.sum {
		return nil
	}
	return s.writeTally(tx, s.tally.pending)
}

// committed records that the transaction's tally is the file's.
func (s *Store) committed() { s.tally.sum = s.tally.pending }

func (s *Store) writeTally(tx *bolt.Tx, t tally) error {
	sealed, err := s.c.seal(bucketMeta, metaTally, t[:])
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(metaTally, sealed)
}

// count computes the tally of every record in tx. Cost: one HMAC per
// record (docs/store.md gives the time for a large file).
func (s *Store) count(tx *bolt.Tx) (tally, error) {
	var t tally
	m := s.c.newTallyMAC()
	for _, name := range talliedBuckets {
		err := tx.Bucket(name).ForEach(func(k, v []byte) error {
			t.xor(term(m, name, k, v))
			return nil
		})
		if err != nil {
			return t, err
		}
	}
	return t, nil
}

// checkTally counts the records of tx and compares them with the sealed
// tally, or seals the count into a file that has none yet (written before
// the tally was kept: its records are taken as they are, once).
func (s *Store) checkTally(tx *bolt.Tx) error {
	counted, err := s.count(tx)
	if err != nil {
		return err
	}
	s.tally.sum = counted
	v := tx.Bucket(bucketMeta).Get(metaTally)
	if v == nil {
		return s.writeTally(tx, counted)
	}
	plain, err := s.c.open(bucketMeta, metaTally, v)
	if err != nil {
		return err
	}
	if !hmac.Equal(plain, counted[:]) {
		return fmt.Errorf("%s: %w: %w", DataFileName, ErrDamaged, ErrRolledBack)
	}
	return nil
}
