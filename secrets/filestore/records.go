package filestore

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/credsign/credsign/secrets"
)

// Buckets of the bbolt file. Keys are plain: device IDs in devices, token
// IDs in tokens, HMAC-SHA256(index key, token hash) in tokenHashes. Values
// of devices and tokens are sealed records; values of tokenHashes are token
// IDs; meta holds the format version, the key check and the migration mark.
var (
	bucketMeta        = []byte("meta")
	bucketDevices     = []byte("devices")
	bucketTokens      = []byte("tokens")
	bucketTokenHashes = []byte("token-hashes")
)

// Keys of bucketMeta.
var (
	metaFormat   = []byte("format")
	metaKeyCheck = []byte("key-check")
	// metaMigrated is the SHA-256 of the legacy file whose records were
	// copied in, so that a start interrupted between the copy and the
	// renaming of that file finishes the job rather than failing.
	metaMigrated = []byte("migrated-from")
)

// formatVersion is the value of metaFormat this build writes and reads: the
// version of the file's layout (buckets, keys, record encoding). A change
// that an older build would misread raises it, with a migration from the
// previous value in setup and an upgrade fixture made by the release that
// wrote it (internal/testing/upgrade).
const formatVersion = "2"

// checkFormat accepts the layout versions this build reads (only
// formatVersion today) and refuses a newer one with secrets.ErrNewerLayout.
func checkFormat(v []byte) error {
	n, err := strconv.Atoi(string(v))
	want, _ := strconv.Atoi(formatVersion)
	switch {
	case err != nil || n < 1:
		return fmt.Errorf("%w: format version %q is not a number", ErrDamaged, v)
	case n > want:
		return fmt.Errorf("store format version %d, this build reads up to %d: %w (run that release, or restore a backup taken before the upgrade)", n, want, secrets.ErrNewerLayout)
	case n < want:
		return fmt.Errorf("store format version %d is older than any this build migrates (it reads %d)", n, want)
	}
	return nil
}

// Labels under which the subkeys are derived from the store key.
const (
	recordKeyLabel = "credsign filestore v2 record key"
	indexKeyLabel  = "credsign filestore v2 token index key"
	keyCheckLabel  = "credsign filestore v2 key check"
)

// recordFormat is the first byte of every sealed value.
const recordFormat byte = 1

// nonceSize is the GCM nonce length; sealed values are
//
//	recordFormat (1 byte) | random nonce (12) | ciphertext and GCM tag (16)
//
// and the associated data is recordFormat | bucket | 0x00 | key, so a value
// moved to another key or bucket fails authentication.
const nonceSize = 12

// sealer seals and opens record values and computes token index keys.
type sealer struct {
	aead     cipher.AEAD
	indexKey []byte
	keyCheck []byte
	tallyKey []byte
}

func newSealer(key []byte) (*sealer, error) {
	aead, err := newGCM(derive(key, recordKeyLabel))
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, indexKey: derive(key, indexKeyLabel), keyCheck: derive(key, keyCheckLabel)[:8],
		tallyKey: derive(key, tallyKeyLabel)}, nil
}

func associatedData(bucket, key []byte) []byte {
	ad := make([]byte, 0, 2+len(bucket)+len(key))
	ad = append(ad, recordFormat)
	ad = append(ad, bucket...)
	ad = append(ad, 0)
	return append(ad, key...)
}

// seal encrypts plain for bucket/key with a fresh random nonce.
func (c *sealer) seal(bucket, key, plain []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plain)+c.aead.Overhead())
	out[0] = recordFormat
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return c.aead.Seal(out, out[1:1+nonceSize], plain, associatedData(bucket, key)), nil
}

// open authenticates and decrypts a value sealed for bucket/key. A value
// changed, truncated or sealed for another place gives an error wrapping
// ErrDamaged.
func (c *sealer) open(bucket, key, value []byte) ([]byte, error) {
	if len(value) < 1+nonceSize+c.aead.Overhead() || value[0] != recordFormat {
		return nil, fmt.Errorf("%w: record %s/%.64q is truncated or of an unknown format", ErrDamaged, bucket, key)
	}
	plain, err := c.aead.Open(nil, value[1:1+nonceSize], value[1+nonceSize:], associatedData(bucket, key))
	if err != nil {
		return nil, fmt.Errorf("%w: record %s/%.64q fails authentication", ErrDamaged, bucket, key)
	}
	return plain, nil
}

// hashKey is the token index key of a token hash: keyed, so the data file
// does not show token hashes.
func (c *sealer) hashKey(hash string) []byte {
	m := hmac.New(sha256.New, c.indexKey)
	m.Write([]byte(hash))
	return m.Sum(nil)
}

// sealRecord seals rec, a device or a group, as JSON for key id of
// bucket.
func sealRecord[T any](c *sealer, bucket []byte, id string, rec T) ([]byte, error) {
	plain, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("%w: params or labels cannot be encoded as JSON", secrets.ErrInvalid)
	}
	defer clear(plain)
	return c.seal(bucket, []byte(id), plain)
}

// openRecord opens the value sealRecord sealed at key id of bucket: a
// record of kind ("device", "group") whose ID, idOf, must be id.
func openRecord[T any](c *sealer, bucket []byte, kind string, id, value []byte, idOf func(T) string) (T, error) {
	var rec T
	plain, err := c.open(bucket, id, value)
	if err != nil {
		return rec, err
	}
	defer clear(plain)
	if err := json.Unmarshal(plain, &rec); err != nil || idOf(rec) != string(id) {
		var zero T
		return zero, fmt.Errorf("%w: %s record %.64q does not decode", ErrDamaged, kind, id)
	}
	return rec, nil
}

func (c *sealer) sealDevice(d secrets.Device) ([]byte, error) {
	return sealRecord(c, bucketDevices, d.ID, d)
}

func (c *sealer) openDevice(id, value []byte) (secrets.Device, error) {
	d, err := openRecord(c, bucketDevices, "device", id, value, func(d secrets.Device) string { return d.ID })
	if err == nil && d.SecretVersion == 0 {
		d.SecretVersion = 1 // written before secret versions
	}
	return d, err
}

func (c *sealer) sealToken(t secrets.Token) ([]byte, error) {
	plain, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode token: %w", err)
	}
	return c.seal(bucketTokens, []byte(t.ID), plain)
}

func (c *sealer) openToken(id, value []byte) (secrets.Token, error) {
	plain, err := c.open(bucketTokens, id, value)
	if err != nil {
		return secrets.Token{}, err
	}
	var t secrets.Token
	if err := json.Unmarshal(plain, &t); err != nil || t.ID != string(id) {
		return secrets.Token{}, fmt.Errorf("%w: token record %.64q does not decode", ErrDamaged, id)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	for _, p := range []**time.Time{&t.RevokedAt, &t.ExpiresAt, &t.ReplacedAt} {
		if *p != nil {
			at := (*p).UTC()
			*p = &at
		}
	}
	return t, nil
}
