package service

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/credsign/credsign/secrets"
)

// Device tokens carry their binding. A device token's text is
//
//	csd_2.<token ID>.<device ID, base64url>.<minted, Unix nanoseconds>.<MAC, base64url>
//
// where the MAC is HMAC-SHA256 under a key kept in the store (KeyStore name
// macKeyName, created by the first replica that needs it) over the version,
// ID, device and time. A replica checks such a token with no store read: the
// MAC proves it was minted here, and the list of revoked token IDs its ID
// falls in (one of revokedShards KeyStore names, each read at most twice per
// cache TTL) says whether it still counts. Its record is stored too (by the hash of its text, as every token),
// so that revoking by ID works as before. Device tokens minted before this
// format (csd_ and 64 hex digits) keep working through the record lookup.
//
// A device token minted with a lifetime carries its expiry as well:
//
//	csd_3.<token ID>.<device ID, base64url>.<minted>.<expires, Unix nanoseconds>.<MAC>
//
// with the expiry in the MAC. When such a token is rotated, its ID goes on
// its revoked list as "<ID>@<Unix nanoseconds>": revoked from then on (the
// end of the rotation overlap).
const (
	deviceTokenV2 = PrefixDevice + "2."
	deviceTokenV3 = PrefixDevice + "3."
	macKeyName    = "device-token-mac"
	// revokedKeyName holds the JSON list of revoked v2 device token IDs
	// that credsign wrote before the lists were sharded; it is still read.
	// Revocations now go to revokedKeyName + ".NN", NN the two hex digits
	// of the first byte of the SHA-256 of the ID, modulo revokedShards:
	// small lists, so that a revoke rewrites about 1/64 of them and none
	// outgrows a store's value limit (Vault's Raft storage: 1 MiB, some
	// 40,000 IDs).
	revokedKeyName = "revoked-device-tokens"
	revokedShards  = 64
)

var b64 = base64.RawURLEncoding

// deviceTokens mints and checks v2 device tokens.
type deviceTokens struct {
	store secrets.KeyStore
	// ttl is the cache's: no copy of a list older than that (counted from
	// when its read began) ever vouches for a token, store outage or not,
	// so that a revoke on another replica is honoured here within ttl. A
	// copy is read again once it is half that old, so that a store outage
	// shorter than ttl/2 goes unnoticed.
	ttl time.Duration
	now func() time.Time

	keyMu sync.Mutex
	key   []byte

	mu     sync.RWMutex
	lists  map[string]*revokedList // by KeyStore name
	flight singleflight.Group
}

// revokedList is this replica's copy of one list of revoked token IDs:
// each with the time it is revoked from (Unix nanoseconds; 0: always).
type revokedList struct {
	ids     map[string]int64
	fetched time.Time
}

// parseRevoked reads an entry of a revoked list: "<ID>" (revoked) or
// "<ID>@<Unix nanoseconds>" (revoked from then on: a rotated token).
func parseRevoked(entry string) (id string, from int64) {
	id, at, ok := strings.Cut(entry, "@")
	if !ok {
		return id, 0
	}
	from, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return id, 0
	}
	return id, from
}

// addRevoked records in set that id is revoked from from: the earliest
// time wins.
func addRevoked(set map[string]int64, id string, from int64) {
	if cur, ok := set[id]; !ok || from < cur {
		set[id] = from
	}
}

// revokedListName is the list token id is revoked on.
func revokedListName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return revokedListNames[sum[0]%revokedShards]
}

// revokedListNames are the names of the shards of the revoked list, by
// number: revokedKeyName + ".NN", NN two hex digits.
var revokedListNames = func() (names [revokedShards]string) {
	for i := range names {
		names[i] = revokedKeyName + "." + strconv.FormatUint(uint64(i)+0x100, 16)[1:]
	}
	return names
}()

// macKey returns the MAC key, creating it in the store on first use.
func (dt *deviceTokens) macKey(ctx context.Context) ([]byte, error) {
	dt.keyMu.Lock()
	defer dt.keyMu.Unlock()
	if dt.key != nil {
		return dt.key, nil
	}
	key, err := sharedKey(ctx, dt.store, macKeyName, "device token key")
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("the device token key in the store is %d bytes, want 32", len(key))
	}
	dt.key = key
	return key, nil
}

// macState is a pooled HMAC-SHA256 under one key, with room for the
// message and the sum: checking a token's MAC on every issuance then
// allocates nothing.
type macState struct {
	key []byte
	h   hash.Hash
	msg [256]byte
	sum [sha256.Size]byte
}

var macStates sync.Pool

// mac returns the MAC of a token's binding, appended to dst: a v2 token's
// when expires is 0, else a v3 token's.
func mac(dst, key []byte, id, deviceID string, minted, expires int64) []byte {
	st, _ := macStates.Get().(*macState)
	if st == nil || !bytes.Equal(st.key, key) {
		st = &macState{key: bytes.Clone(key), h: hmac.New(sha256.New, key)}
	}
	st.h.Reset()
	msg := append(st.msg[:0], "credsign device token v2\x00"...)
	if expires != 0 {
		msg = append(st.msg[:0], "credsign device token v3\x00"...)
	}
	msg = append(append(msg, id...), 0)
	msg = append(append(msg, deviceID...), 0)
	msg = strconv.AppendInt(msg, minted, 10)
	if expires != 0 {
		msg = strconv.AppendInt(append(msg, 0), expires, 10)
	}
	st.h.Write(msg)
	out := append(dst, st.h.Sum(st.sum[:0])...)
	macStates.Put(st)
	return out
}

// carriesBinding reports whether text is a v2 or v3 device token.
func (dt *deviceTokens) carriesBinding(text string) bool {
	return strings.HasPrefix(text, deviceTokenV2) || strings.HasPrefix(text, deviceTokenV3)
}

// mint returns the text of a token for the token record r: v3 when it
// expires, else v2.
func (dt *deviceTokens) mint(ctx context.Context, r secrets.Token) (string, error) {
	key, err := dt.macKey(ctx)
	if err != nil {
		return "", err
	}
	minted := r.CreatedAt.UnixNano()
	prefix, expires, exp := deviceTokenV2, int64(0), ""
	if r.ExpiresAt != nil {
		prefix, expires = deviceTokenV3, r.ExpiresAt.UnixNano()
		exp = strconv.FormatInt(expires, 10) + "."
	}
	return prefix + r.ID + "." + b64.EncodeToString([]byte(r.DeviceID)) + "." +
		strconv.FormatInt(minted, 10) + "." + exp + b64.EncodeToString(mac(nil, key, r.ID, r.DeviceID, minted, expires)), nil
}

// check resolves a v2 or v3 token text to its caller, or CodeUnauthorized
// (saying why for a token expired or rotated: see errExpired).
func (dt *deviceTokens) check(ctx context.Context, text string) (Principal, error) {
	f, ok := splitDeviceToken(text)
	if !ok {
		return Principal{}, errUnauthorized()
	}
	var devBuf [128]byte
	var sumBuf [2 * sha256.Size]byte
	dev, err1 := b64Decode(devBuf[:], f.device)
	minted, err2 := strconv.ParseInt(f.minted, 10, 64)
	sum, err3 := b64Decode(sumBuf[:], f.mac)
	if err1 != nil || err2 != nil || err3 != nil || !secrets.ValidID(f.id) {
		return Principal{}, errUnauthorized()
	}
	key, err := dt.macKey(ctx)
	if err != nil {
		return Principal{}, err
	}
	var want [sha256.Size]byte
	if !hmac.Equal(sum, mac(want[:0], key, f.id, string(dev), minted, f.expires)) {
		return Principal{}, errUnauthorized()
	}
	now := dt.now()
	from, revoked, err := dt.revokedFrom(ctx, f.id)
	switch {
	case err != nil:
		return Principal{}, err
	case revoked && from == 0:
		return Principal{}, errUnauthorized()
	case f.expires != 0 && now.UnixNano() >= f.expires:
		return Principal{}, errExpired()
	case revoked && now.UnixNano() >= from:
		return Principal{}, errRotated()
	}
	return Principal{TokenID: f.id, Role: secrets.RoleDevice, DeviceID: string(dev), CreatedAt: time.Unix(0, minted).UTC()}, nil
}

// deviceTokenFields are the parts of a v2 or v3 token's text, not yet
// decoded (expires is 0 for v2).
type deviceTokenFields struct {
	id, device, minted, mac string
	expires                 int64
}

// splitDeviceToken cuts a v2 or v3 token's text at its dots: false when
// it has more or fewer parts than its version has, or (v3) an expiry that
// is not a non-zero integer.
func splitDeviceToken(text string) (deviceTokenFields, bool) {
	var f deviceTokenFields
	rest, v3 := strings.CutPrefix(text, deviceTokenV3)
	if !v3 {
		rest = strings.TrimPrefix(text, deviceTokenV2)
	}
	var ok [5]bool
	f.id, rest, ok[0] = strings.Cut(rest, ".")
	f.device, rest, ok[1] = strings.Cut(rest, ".")
	f.minted, rest, ok[2] = strings.Cut(rest, ".")
	if v3 {
		var expires string
		expires, rest, ok[3] = strings.Cut(rest, ".")
		var err error
		if f.expires, err = strconv.ParseInt(expires, 10, 64); err != nil || f.expires == 0 {
			return f, false
		}
	} else {
		ok[3] = true
	}
	f.mac = rest
	ok[4] = !strings.Contains(rest, ".")
	return f, ok == [5]bool{true, true, true, true, true}
}

// b64Decode is b64.DecodeString into buf, with the text copied to the
// stack on the way, when both fit: a token's check then allocates nothing
// to decode it.
func b64Decode(buf []byte, s string) ([]byte, error) {
	var src [256]byte
	if len(s) > len(src) || b64.DecodedLen(len(s)) > len(buf) {
		return b64.DecodeString(s)
	}
	n, err := b64.Decode(buf, src[:copy(src[:], s)])
	return buf[:n], err
}

// revokedFrom reports whether token id is on its list, or on the list of
// the versions before the shards, and from when it is revoked (Unix
// nanoseconds; 0: always).
func (dt *deviceTokens) revokedFrom(ctx context.Context, id string) (int64, bool, error) {
	for _, name := range [2]string{revokedListName(id), revokedKeyName} {
		if from, revoked, err := dt.onList(ctx, name, id); err != nil || revoked {
			return from, revoked, err
		}
	}
	return 0, false, nil
}

// onList reports whether id is on list name (and from when it is
// revoked), reading the list again when
// this replica's copy is older than half the TTL (once for all callers).
// While the store does not answer, a copy younger than the TTL still
// serves; an older one vouches for nothing, and the caller gets an error
// wrapping secrets.ErrUnavailable (503): a revoke on another replica may
// be on the list by now.
func (dt *deviceTokens) onList(ctx context.Context, name, id string) (int64, bool, error) {
	dt.mu.RLock()
	l := dt.lists[name]
	var age time.Duration
	var from int64
	revoked, known := false, l != nil && !l.fetched.IsZero()
	if known {
		age = dt.now().Sub(l.fetched)
	}
	if l != nil {
		from, revoked = l.ids[id]
	}
	dt.mu.RUnlock()
	if revoked && from == 0 {
		return 0, true, nil
	}
	if known && dt.ttl > 0 && age < dt.ttl/2 {
		return from, revoked, nil
	}
	_, err, _ := dt.flight.Do(name, func() (any, error) {
		start := dt.now()
		ids, _, err := dt.readRevoked(context.WithoutCancel(ctx), name)
		if err != nil {
			return nil, err
		}
		set := make(map[string]int64, len(ids))
		for _, r := range ids {
			id, from := parseRevoked(r)
			addRevoked(set, id, from)
		}
		dt.mu.Lock()
		if dt.lists == nil {
			dt.lists = map[string]*revokedList{}
		}
		if old := dt.lists[name]; old != nil {
			// A revoke is for good: keep what this replica knew,
			// its own revokes made while the read was under way
			// included.
			for r, from := range old.ids {
				addRevoked(set, r, from)
			}
		}
		dt.lists[name] = &revokedList{ids: set, fetched: start}
		dt.mu.Unlock()
		return nil, nil
	})
	if err != nil {
		// The age now, after the failed read (which may have waited out
		// the store's timeout).
		if errors.Is(err, secrets.ErrUnavailable) && known && dt.ttl > 0 && dt.now().Sub(l.fetched) < dt.ttl {
			return from, revoked, nil
		}
		return 0, false, fmt.Errorf("reading the revoked device tokens: %w", err)
	}
	dt.mu.RLock()
	defer dt.mu.RUnlock()
	from, revoked = dt.lists[name].ids[id]
	return from, revoked, nil
}

// readRevoked reads a list of revoked token IDs and its version (0: none
// yet).
func (dt *deviceTokens) readRevoked(ctx context.Context, name string) ([]string, int64, error) {
	raw, version, err := dt.store.GetKey(ctx, name)
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var ids []string
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, 0, fmt.Errorf("decoding the revoked device tokens: %w", err)
	}
	return ids, version, nil
}

// revoke puts token id on its list of revoked tokens, revoked from time
// from on (zero: at once, for good), with a compare-and-set retried when
// another replica wrote the list meanwhile, and on this replica's copy at
// once. Cost: one read and one write of that list, about 1/64 of the
// revoked IDs.
func (dt *deviceTokens) revoke(ctx context.Context, id string, from time.Time) error {
	name := revokedListName(id)
	entry, at := id, int64(0)
	if !from.IsZero() {
		at = from.UnixNano()
		entry = id + "@" + strconv.FormatInt(at, 10)
	}
	for attempt := 0; ; attempt++ {
		ids, version, err := dt.readRevoked(ctx, name)
		if err != nil {
			return fmt.Errorf("reading the revoked device tokens: %w", err)
		}
		if slices.Contains(ids, entry) || slices.Contains(ids, id) {
			dt.markRevoked(name, id, at)
			return nil
		}
		raw, err := json.Marshal(append(ids, entry))
		if err != nil {
			return err
		}
		_, err = dt.store.PutKey(ctx, name, raw, version)
		if errors.Is(err, secrets.ErrConflict) && attempt < 20 {
			continue
		}
		if err != nil {
			return fmt.Errorf("writing the revoked device tokens: %w", err)
		}
		dt.markRevoked(name, id, at)
		return nil
	}
}

// markRevoked puts id, revoked from from, on this replica's copy of list
// name.
func (dt *deviceTokens) markRevoked(name, id string, from int64) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	if dt.lists == nil {
		dt.lists = map[string]*revokedList{}
	}
	l := dt.lists[name]
	if l == nil {
		// Not read yet: the next check reads it (fetched is zero).
		l = &revokedList{ids: map[string]int64{}}
		dt.lists[name] = l
	}
	addRevoked(l.ids, id, from)
}
