// Package secrets defines the contract between credsign and the stores that
// keep device secrets and API token hashes: the HashiCorp Vault KV v2 backend
// (package secrets/vaultstore) and the embedded encrypted file backend
// (package secrets/filestore). Both pass the conformance suite in
// secrets/storetest.
package secrets

import (
	"context"
	"errors"
	"regexp"
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
)

// validID is the syntax of device and token IDs: it keeps them safe as a
// single path segment in Vault and in URLs.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// ValidID reports whether id may name a device or a token: 1 to 128
// characters from [A-Za-z0-9._:-], starting with a letter or digit.
// Stores reject other IDs with an error wrapping ErrInvalid.
func ValidID(id string) bool {
	return validID.MatchString(id)
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
	// Version starts at 1 and increases by one on every successful write.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Token roles.
const (
	RoleProvisioner = "provisioner"
	RoleDevice      = "device"
)

// Token is a stored API token. Only the SHA-256 hash of the token text is
// kept; the text itself is shown once to whoever created it.
type Token struct {
	ID        string     `json:"id"`
	Hash      string     `json:"hash"` // lowercase hex SHA-256 of the token text
	Role      string     `json:"role"`
	DeviceID  string     `json:"deviceId,omitempty"` // set for RoleDevice
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// ListOptions selects a page of devices.
type ListOptions struct {
	// Cloud, when set, keeps only devices of that cloud.
	Cloud string
	// After is the cursor: only devices whose ID sorts after it are returned.
	After string
	// Limit caps the page size; 0 means a default of 100.
	Limit int
}

// Page is one page of a device listing, sorted by ID. Next is the cursor for
// the following page, empty on the last page.
type Page struct {
	Devices []Device
	Next    string
}

// DeviceStore keeps device records.
type DeviceStore interface {
	// GetDevice returns the device or ErrNotFound. The returned record is
	// the caller's to modify.
	GetDevice(ctx context.Context, id string) (Device, error)
	// PutDevice writes d (ID, Cloud, Params, Secret, Labels are used; the
	// store sets Version, CreatedAt, UpdatedAt). ifVersion < 0 writes
	// unconditionally; 0 requires that the device not exist; > 0 requires that
	// the stored version equal it, else ErrConflict. It returns the stored record.
	PutDevice(ctx context.Context, d Device, ifVersion int64) (Device, error)
	// DeleteDevice removes the device and every version of its secret, or
	// returns ErrNotFound.
	DeleteDevice(ctx context.Context, id string) error
	// ListDevices returns a page of devices sorted by ID.
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
