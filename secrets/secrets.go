// Package secrets defines the contract between credsign and the stores that
// keep device secrets and API token hashes: the HashiCorp Vault KV v2 backend
// (package secrets/vaultstore) and the embedded encrypted file backend
// (package secrets/filestore). Both pass the conformance suite in
// secrets/storetest.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors every Store returns (wrapped) so callers can map them to
// HTTP statuses with errors.Is.
var (
	// ErrNotFound means the device or token does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a compare-and-set write saw a different version
	// (or, with version 0, that the record already exists).
	ErrConflict = errors.New("version conflict")
	// ErrUnavailable means the store cannot be reached right now (Vault sealed,
	// down or timing out); the caller may retry later.
	ErrUnavailable = errors.New("store unavailable")
	// ErrInvalid means an argument can never be stored: a device or token ID
	// that ValidID rejects, or a token hash that ValidHash rejects. Callers
	// map it to a client error (400), not to a server error.
	ErrInvalid = errors.New("invalid argument")
	// ErrNewerLayout means the store's data was written by a newer credsign
	// (a layout version this build does not know). Opening refuses it and
	// changes nothing: a downgrade must not corrupt what the newer release
	// wrote. Run that release, or restore a backup taken before the upgrade.
	ErrNewerLayout = errors.New("written by a newer credsign: downgrade refused")
)

// ValidID reports whether id may name a device or a token: 1 to 128
// characters from [A-Za-z0-9._:-], starting with a letter or digit
// (^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$), which keeps it safe as a single
// path segment in Vault and in URLs. Stores reject other IDs with an
// error wrapping ErrInvalid. It is checked on every request that names a
// device or carries a device token, hence a loop, not a regular
// expression.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 128 || !alnum(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; !alnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

// alnum reports whether c is an ASCII letter or digit.
func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ValidHash reports whether h has the form of Token.Hash: 64 lowercase
// hexadecimal digits (a SHA-256 digest).
func ValidHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Device is a stored device record: the device document of openapi.yaml (DeviceDocument) plus
// the bookkeeping the store adds. Secret is write-only for API callers; it is
// returned by the store only so the signing code can use it.
//
// Params come back as encoding/json decodes them into an any: strings,
// float64 numbers and booleans, whatever the backend.
type Device struct {
	ID     string            `json:"id"`
	Cloud  string            `json:"cloud"`
	Params map[string]any    `json:"params"`
	Secret string            `json:"secret"`
	Labels map[string]string `json:"labels,omitempty"`
	// Group names the group the device belongs to, "" for none. A device
	// of a group may have no Secret: the service derives it from the
	// group's.
	Group string `json:"group,omitempty"`
	// SecretVersion counts the device's secrets: 1 at creation, one more
	// each time a write stores a Secret other than the stored one (a
	// rotation). The store sets it (see CarrySecret); a record written
	// before secret versions existed reads as 1.
	SecretVersion int64 `json:"secretVersion,omitempty"`
	// PreviousSecret is the secret the last rotation replaced, "" before
	// the first; write-only like Secret, kept so that a diagnosis can
	// compare both while a cloud-side change propagates. The store sets it.
	PreviousSecret string `json:"previousSecret,omitempty"`
	// SecretRotatedAt is when the last rotation was stored, nil before the
	// first. The store sets it.
	SecretRotatedAt *time.Time `json:"secretRotatedAt,omitempty"`
	// Keys are the device's public keys, with which it signs proofs of
	// possession instead of sending a bearer token (MaxDeviceKeys at most).
	Keys []DeviceKey `json:"keys,omitempty"`
	// RequireKey refuses the device's bearer tokens: proofs only.
	RequireKey bool `json:"requireKey,omitempty"`
	// Version starts at 1 and increases by one on every successful write.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// MaxDeviceKeys is how many keys one device may hold: enough to roll a
// key over (old and new) with room to spare, few enough that checking a
// proof against them all stays cheap.
const MaxDeviceKeys = 4

// DeviceKey is a public key bound to a device. Its ID is the RFC 7638
// SHA-256 thumbprint of the key (base64url); JWK is the public JWK as
// JSON. Nothing of it is secret.
type DeviceKey struct {
	ID          string          `json:"kid"`
	JWK         json.RawMessage `json:"jwk"`
	Name        string          `json:"name,omitempty"`
	Attestation string          `json:"attestation,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
}

// Token roles.
const (
	RoleProvisioner = "provisioner"
	RoleDevice      = "device"
)

// Token is a stored API token. Only the SHA-256 hash of the token text is
// kept; the text itself is shown once to whoever created it. Records
// written before Name, ExpiresAt and the rotation fields existed read with
// them empty: no name, no expiry, never rotated. Stores keep the record as
// JSON, so a field added here later is kept by both without a change.
type Token struct {
	ID       string `json:"id"`
	Hash     string `json:"hash"` // lowercase hex SHA-256 of the token text
	Role     string `json:"role"`
	DeviceID string `json:"deviceId,omitempty"` // set for RoleDevice
	// Name is what the minter called the token ("" when none was given).
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// ExpiresAt is when the token stops working; nil: never.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// LifetimeSeconds is the lifetime the token was minted with (0: none);
	// a rotation gives the successor the same.
	LifetimeSeconds int64      `json:"lifetimeSeconds,omitempty"`
	RevokedAt       *time.Time `json:"revokedAt,omitempty"`
	// ReplacedBy is the ID of the token a rotation exchanged this one for
	// ("" if it was never rotated), ReplacedAt when.
	ReplacedBy string     `json:"replacedBy,omitempty"`
	ReplacedAt *time.Time `json:"replacedAt,omitempty"`
	// Scope limits a provisioner token to some devices and groups; nil
	// for an unscoped token (every device and group).
	Scope *Scope `json:"scope,omitempty"`
}

// Scope is what a scoped provisioner token may act on: the devices of
// some groups and/or those that carry some labels. Its meaning (which
// records are inside) is the service's; the store keeps it as given.
type Scope struct {
	// Groups, when not empty, keeps devices of one of these groups, and
	// these groups.
	Groups []string `json:"groups,omitempty"`
	// Labels, when not empty, keeps devices and groups that have every
	// one of these labels with the value given.
	Labels map[string]string `json:"labels,omitempty"`
}

// TokenListOptions selects a page of token records.
type TokenListOptions struct {
	// Role is RoleProvisioner (every provisioner token) or RoleDevice (the
	// tokens of DeviceID).
	Role     string
	DeviceID string
	// After is the cursor: only tokens whose ID sorts after it are returned.
	After string
	// Limit caps the page size; 0 means a default of 100.
	Limit int
}

// Valid reports whether opts selects a listing: the provisioner tokens,
// or the tokens of a device whose ID is valid. Stores refuse other options
// with an error wrapping ErrInvalid.
func (opts TokenListOptions) Valid() bool {
	return opts.Role == RoleProvisioner || opts.Role == RoleDevice && ValidID(opts.DeviceID)
}

// DefaultLimit is the page size of a listing asked for with a limit of 0.
const DefaultLimit = 100

// PageLimit returns the page size of a listing asked for with limit:
// limit, or DefaultLimit when it is 0 or less.
func PageLimit(limit int) int {
	if limit <= 0 {
		return DefaultLimit
	}
	return limit
}

// TokenPage is one page of a token listing, sorted by ID (so by mint time:
// token IDs start with it). Next is the cursor for the following page,
// empty on the last page.
type TokenPage struct {
	Tokens []Token
	Next   string
}

// ListOptions selects a page of devices.
type ListOptions struct {
	// Cloud, when set, keeps only devices of that cloud.
	Cloud string
	// Group, when set, keeps only devices of that group.
	Group string
	// Labels keeps only devices that have every label with the value
	// given.
	Labels map[string]string
	// Scope, when set, keeps only the devices inside it (a scoped
	// provisioner token's scope).
	Scope *Scope
	// MaxScan bounds how many device records one call examines (filters
	// included); 0 means the store's own budget (ScanBudget of the
	// filestore, of the vaultstore). A call that spends it before the page
	// is full returns the page found so far with Partial set.
	MaxScan int
	// After is the cursor: only devices whose ID sorts after it are returned.
	After string
	// Limit caps the page size; 0 means a default of 100.
	Limit int
}

// Budget returns how many records a listing with opts examines at most:
// opts.MaxScan, or storeBudget, the store's own, when it is 0 or less.
func (opts ListOptions) Budget(storeBudget int) int {
	if opts.MaxScan <= 0 {
		return storeBudget
	}
	return opts.MaxScan
}

// Page is one page of a device listing, sorted by ID. Next is the cursor for
// the following page, empty on the last page. A page that is not full is
// the last one (Next empty), unless Partial says the scan budget ran out:
// Next is then the last ID examined, so the following call continues
// after it.
type Page struct {
	Devices []Device
	Next    string
	// Scanned is how many device records the call examined.
	Scanned int
	// Partial reports that the call stopped at its scan budget before the
	// page was full and before the end (Next is set).
	Partial bool
}

// DeviceStore keeps device records.
type DeviceStore interface {
	// GetDevice returns the device or ErrNotFound. The returned record is
	// the caller's to modify.
	GetDevice(ctx context.Context, id string) (Device, error)
	// PutDevice writes d (ID, Cloud, Params, Secret, Labels, Group are
	// used; the store sets Version, CreatedAt, UpdatedAt and the secret's
	// bookkeeping, SecretVersion, PreviousSecret and SecretRotatedAt, by
	// CarrySecret). ifVersion < 0 writes
	// unconditionally; 0 requires that the device not exist; > 0 requires that
	// the stored version equal it, else ErrConflict. It returns the stored record.
	PutDevice(ctx context.Context, d Device, ifVersion int64) (Device, error)
	// DeleteDevice removes the device and every version of its secret, or
	// returns ErrNotFound.
	DeleteDevice(ctx context.Context, id string) error
	// ListDevices returns a page of devices sorted by ID, of those that
	// match opts' filters, examining at most opts.MaxScan records (or the
	// store's budget).
	ListDevices(ctx context.Context, opts ListOptions) (Page, error)
}

// TokenStore keeps API token records.
type TokenStore interface {
	// PutToken stores a new token record; ErrConflict if its ID or its hash
	// exists. The store keeps t.RevokedAt as given.
	PutToken(ctx context.Context, t Token) error
	// TokenByHash finds a token by the hash of its text, or ErrNotFound.
	// Revoked tokens are returned too (with RevokedAt set).
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// GetToken finds a token by ID, or ErrNotFound.
	GetToken(ctx context.Context, id string) (Token, error)
	// RevokeToken marks the token revoked at the given time, or returns
	// ErrNotFound. Revoking a revoked token succeeds and keeps the first time.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// ReplaceToken records that token id was exchanged for token by at
	// time at and returns the record as stored. It is a compare-and-set:
	// a token already replaced (by any token) or revoked is not changed
	// and the answer is ErrConflict; an unknown one ErrNotFound. Of two
	// rotations of one token at once, exactly one succeeds.
	ReplaceToken(ctx context.Context, id, by string, at time.Time) (Token, error)
	// ListTokens returns a page of the provisioner tokens, or of one
	// device's tokens, sorted by ID; revoked and replaced ones included.
	ListTokens(ctx context.Context, opts TokenListOptions) (TokenPage, error)
}

// KeyStore keeps the service's own keys and small shared values (the MAC
// key of device tokens, the list of revoked ones): named, opaque, versioned
// for compare-and-set, and shared by every replica on the same store.
type KeyStore interface {
	// GetKey returns the value stored under name and its version (1 or
	// more), or ErrNotFound.
	GetKey(ctx context.Context, name string) ([]byte, int64, error)
	// PutKey stores value under name if the stored version is ifVersion (0:
	// name must not exist), else ErrConflict; it returns the new version.
	PutKey(ctx context.Context, name string, value []byte, ifVersion int64) (int64, error)
}

// Store is everything the service needs from a backend.
type Store interface {
	DeviceStore
	GroupStore
	TokenStore
	EnrolmentTokenStore
	KeyStore
	// Ping reports whether the store is reachable (ErrUnavailable if not).
	Ping(ctx context.Context) error
	// Close releases resources (renewal goroutines, file handles).
	Close() error
}

// Registration says how the service registers a new device of a group with
// its cloud: Kind names the procedure ("azure-dps", "aliyun-dynamic",
// "tencent-dynamic") and Params are its settings (such as a DPS ID scope).
type Registration struct {
	Kind   string            `json:"kind"`
	Params map[string]string `json:"params,omitempty"`
}

// Group is a stored group of devices: the cloud they share, the template of
// their params (in string values "{deviceId}" stands for the device's ID),
// the group key or product secret, labels, and optionally how new devices
// are registered with the cloud. Secret is write-only for API callers, like
// a device secret.
type Group struct {
	ID           string            `json:"id"`
	Cloud        string            `json:"cloud"`
	Params       map[string]any    `json:"params,omitempty"`
	Secret       string            `json:"secret"`
	Labels       map[string]string `json:"labels,omitempty"`
	Registration *Registration     `json:"registration,omitempty"`
	// RequireKey refuses the bearer tokens of the group's devices: proofs
	// of possession only.
	RequireKey bool `json:"requireKey,omitempty"`
	// RequireAttestation, when "tpm", refuses the group's enrolments
	// without TPM attestation of the device key ("" requires none).
	RequireAttestation string `json:"requireAttestation,omitempty"`
	// Version starts at 1 and increases by one on every successful write.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// GroupPage is one page of a group listing, sorted by ID. Next is the
// cursor for the following page, empty on the last page.
type GroupPage struct {
	Groups []Group
	Next   string
}

// GroupStore keeps group records, under the same rules as DeviceStore.
type GroupStore interface {
	// GetGroup returns the group or ErrNotFound.
	GetGroup(ctx context.Context, id string) (Group, error)
	// PutGroup writes g (ID, Cloud, Params, Secret, Labels, Registration,
	// RequireAttestation
	// are used; the store sets Version, CreatedAt, UpdatedAt) under the
	// compare-and-set rules of DeviceStore.PutDevice (CheckVersion).
	PutGroup(ctx context.Context, g Group, ifVersion int64) (Group, error)
	// DeleteGroup removes the group and its secret, or returns ErrNotFound.
	DeleteGroup(ctx context.Context, id string) error
	// ListGroups returns up to limit groups (0: 100) whose IDs sort after
	// after, sorted by ID.
	ListGroups(ctx context.Context, after string, limit int) (GroupPage, error)
}
