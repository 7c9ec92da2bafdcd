package cloudemu

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DPS emulates the HTTPS device registration API of the Azure IoT Hub Device
// Provisioning Service for symmetric-key enrollment groups, written from
// Microsoft's REST reference ("Runtime Registration - Register Device" and
// "Runtime Registration - Operation Status Lookup",
// learn.microsoft.com/rest/api/iot-dps/device/runtime-registration) and the
// DPS docs "Control access with SAS tokens" and "How to provision devices
// using symmetric key enrollment groups", independently of the recipes in cloud/:
//
//	PUT /{idScope}/registrations/{registrationId}/register?api-version=…
//	GET /{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=…
//
// Both carry Authorization: SharedAccessSignature sr=urlenc({idScope}/registrations/{registrationId})
// &sig=…&se=…&skn=registration, signed with the device key that the group
// key derives: b64(HMAC-SHA256(b64d(groupKey), registrationId)). The PUT
// answers 202 "assigning" with an operation id and Retry-After; the first
// AssigningPolls polls answer "assigning" too, then the group's outcome.
type DPS struct {
	httpsEmu
	opts DPSOptions

	mu            sync.Mutex
	groups        []DPSGroup
	ops           map[string]*dpsOp
	devices       map[string]DPSDevice
	registrations int
	earlyPolls    int
}

// DPSOptions configures a DPS emulator.
type DPSOptions struct {
	// IDScope is the DPS instance's ID scope (required).
	IDScope string
	// CA signs the server certificate; generated when nil.
	CA *TestCA
	// Now is the emulator's clock for SAS expiry; default time.Now.
	Now func() time.Time
	// AssigningPolls is how many polls answer "assigning" before the
	// outcome; default 1, negative for none.
	AssigningPolls int
	// RetryAfter is the Retry-After, in seconds, of "assigning" answers;
	// default 1, negative to send none.
	RetryAfter int
}

// DPSGroup is a symmetric-key enrollment group.
type DPSGroup struct {
	// Key is the group's primary key, standard base64.
	Key string
	// Hub is the IoT hub host the group assigns devices to.
	Hub string
	// Outcome is the final status of registrations: "assigned" (default),
	// "failed" or "disabled".
	Outcome string
}

// DPSDevice is a device the emulator assigned to a hub.
type DPSDevice struct {
	Hub      string
	DeviceID string
	// Key is the device key the emulator derived from its group key: the
	// key the hub knows the device by.
	Key string
}

type dpsOp struct {
	id, regID string
	group     DPSGroup
	deviceKey string
	polls     int
	notBefore time.Time
	created   time.Time
}

// dpsAPIVersions are the api-version values the REST reference has listed
// for the runtime registration API.
var dpsAPIVersions = map[string]bool{"2019-03-31": true, "2021-06-01": true, "2021-10-01": true}

// StartDPS starts a DPS emulator on 127.0.0.1 with TLS.
func StartDPS(opts DPSOptions) (*DPS, error) {
	if opts.IDScope == "" {
		return nil, fmt.Errorf("cloudemu: DPS needs an ID scope")
	}
	if opts.AssigningPolls == 0 {
		opts.AssigningPolls = 1
	}
	if opts.RetryAfter == 0 {
		opts.RetryAfter = 1
	}
	d := &DPS{opts: opts, ops: map[string]*dpsOp{}, devices: map[string]DPSDevice{}}
	if err := d.start(opts.CA, opts.Now, http.HandlerFunc(d.serve)); err != nil {
		return nil, err
	}
	return d, nil
}

// AddGroup adds a symmetric-key enrollment group.
func (d *DPS) AddGroup(g DPSGroup) error {
	if k, err := base64.StdEncoding.DecodeString(g.Key); err != nil || len(k) == 0 {
		return fmt.Errorf("cloudemu: DPS group key must be standard base64")
	}
	if g.Hub == "" {
		return fmt.Errorf("cloudemu: DPS group needs a hub")
	}
	if g.Outcome == "" {
		g.Outcome = "assigned"
	}
	d.mu.Lock()
	d.groups = append(d.groups, g)
	d.mu.Unlock()
	return nil
}

// Registrations counts the register requests the emulator accepted.
func (d *DPS) Registrations() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.registrations
}

// EarlyPolls counts operation polls that came before the Retry-After of
// the previous answer had passed (answered 429, as a throttled DPS does).
func (d *DPS) EarlyPolls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.earlyPolls
}

// Device returns the device assigned for a registration id.
func (d *DPS) Device(registrationID string) (DPSDevice, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev, ok := d.devices[registrationID]
	return dev, ok
}

// dpsError writes a ProvisioningServiceErrorDetails body.
func (d *DPS) dpsError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{
		"errorCode": code, "trackingId": randomID(8), "message": msg,
		"timestampUtc": d.now().UTC().Format(time.RFC3339Nano),
	})
}

func (d *DPS) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if len(parts) < 4 || parts[1] != "registrations" {
		d.dpsError(w, http.StatusNotFound, 404000, "no such resource")
		return
	}
	scope, err1 := url.PathUnescape(parts[0])
	regID, err2 := url.PathUnescape(parts[2])
	if err1 != nil || err2 != nil || scope == "" || regID == "" {
		d.dpsError(w, http.StatusBadRequest, 400000, "bad path")
		return
	}
	if !dpsAPIVersions[r.URL.Query().Get("api-version")] {
		d.dpsError(w, http.StatusBadRequest, 400001, "missing or unknown api-version")
		return
	}
	if scope != d.opts.IDScope {
		d.dpsError(w, http.StatusUnauthorized, 401002, "unknown ID scope")
		return
	}
	group, deviceKey, status, code, msg := d.authorize(r.Header.Get("Authorization"), scope, regID)
	if status != 0 {
		d.dpsError(w, status, code, msg)
		return
	}
	switch {
	case len(parts) == 4 && parts[3] == "register" && r.Method == http.MethodPut:
		d.register(w, r, regID, group, deviceKey)
	case len(parts) == 5 && parts[3] == "operations" && r.Method == http.MethodGet:
		d.poll(w, regID, parts[4])
	default:
		d.dpsError(w, http.StatusNotFound, 404000, "no such resource")
	}
}

// authorize checks the SAS token the way DPS does for a group enrollment:
// sr names this registration, se has not passed, skn is "registration" when
// present, and sig is the HMAC of "sr\nse" under the device key derived from
// one of the groups' keys. It returns the matching group, or an HTTP
// status, DPS error code and message.
func (d *DPS) authorize(header, scope, regID string) (DPSGroup, string, int, int, string) {
	sas, err := parseAzureSAS(header)
	if err != nil {
		return DPSGroup{}, "", http.StatusUnauthorized, 401002, "malformed SharedAccessSignature"
	}
	want := url.QueryEscape(scope + "/registrations/" + regID)
	if !strings.EqualFold(sas.sr, want) {
		return DPSGroup{}, "", http.StatusUnauthorized, 401002, "sr does not name this registration"
	}
	if sas.skn != "" && sas.skn != "registration" {
		return DPSGroup{}, "", http.StatusUnauthorized, 401002, "skn must be registration"
	}
	if !d.now().Before(time.Unix(sas.se, 0)) {
		return DPSGroup{}, "", http.StatusUnauthorized, 401002, "SAS token expired"
	}
	sig, err := url.QueryUnescape(sas.sig)
	if err != nil {
		return DPSGroup{}, "", http.StatusUnauthorized, 401002, "sig is not URL-encoded"
	}
	d.mu.Lock()
	groups := append([]DPSGroup(nil), d.groups...)
	d.mu.Unlock()
	msg := []byte(sas.sr + "\n" + strconv.FormatInt(sas.se, 10))
	for _, g := range groups {
		deviceKey, _ := DPSDeviceKey(g.Key, regID)
		dk, _ := base64.StdEncoding.DecodeString(deviceKey)
		expect := base64.StdEncoding.EncodeToString(hmacSum(sha256.New, dk, msg))
		if subtle.ConstantTimeCompare([]byte(expect), []byte(sig)) == 1 {
			return g, deviceKey, 0, 0, ""
		}
	}
	return DPSGroup{}, "", http.StatusUnauthorized, 401002, "signature does not match any enrollment"
}

func (d *DPS) register(w http.ResponseWriter, r *http.Request, regID string, g DPSGroup, deviceKey string) {
	var body struct {
		RegistrationID string `json:"registrationId"`
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil || json.Unmarshal(b, &body) != nil {
		d.dpsError(w, http.StatusBadRequest, 400004, "body is not a DeviceRegistration")
		return
	}
	if body.RegistrationID != regID {
		d.dpsError(w, http.StatusBadRequest, 400004, "registrationId in the body differs from the path")
		return
	}
	now := d.now()
	op := &dpsOp{id: "4." + randomID(8) + "." + randomID(16), regID: regID, group: g, deviceKey: deviceKey, created: now}
	d.mu.Lock()
	d.ops[op.id] = op
	d.registrations++
	d.mu.Unlock()
	if d.opts.AssigningPolls < 0 {
		d.finish(w, op)
		return
	}
	d.assigning(w, op, now)
}

// assigning answers 202 "assigning" with Retry-After.
func (d *DPS) assigning(w http.ResponseWriter, op *dpsOp, now time.Time) {
	if d.opts.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(d.opts.RetryAfter))
		d.mu.Lock()
		op.notBefore = now.Add(time.Duration(d.opts.RetryAfter) * time.Second)
		d.mu.Unlock()
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"operationId": op.id, "status": "assigning"})
}

func (d *DPS) poll(w http.ResponseWriter, regID, opID string) {
	now := d.now()
	d.mu.Lock()
	op, ok := d.ops[opID]
	if ok && op.regID != regID {
		ok = false
	}
	early := ok && now.Before(op.notBefore)
	if early {
		d.earlyPolls++
	}
	if ok && !early {
		op.polls++
	}
	d.mu.Unlock()
	switch {
	case !ok:
		d.dpsError(w, http.StatusNotFound, 404201, "operation not found")
	case early:
		w.Header().Set("Retry-After", strconv.Itoa(max(d.opts.RetryAfter, 1)))
		d.dpsError(w, http.StatusTooManyRequests, 429001, "polled before Retry-After")
	case op.polls <= d.opts.AssigningPolls:
		d.assigning(w, op, now)
	default:
		d.finish(w, op)
	}
}

// finish answers the operation's outcome and, when assigned, records the
// device as the hub would create it.
func (d *DPS) finish(w http.ResponseWriter, op *dpsOp) {
	now := d.now().UTC().Format(time.RFC3339Nano)
	state := map[string]any{
		"registrationId": op.regID, "createdDateTimeUtc": op.created.UTC().Format(time.RFC3339Nano),
		"status": op.group.Outcome, "lastUpdatedDateTimeUtc": now, "etag": `"` + randomID(4) + `"`,
	}
	switch op.group.Outcome {
	case "assigned":
		state["assignedHub"], state["deviceId"], state["substatus"] = op.group.Hub, op.regID, "initialAssignment"
		d.mu.Lock()
		d.devices[op.regID] = DPSDevice{Hub: op.group.Hub, DeviceID: op.regID, Key: op.deviceKey}
		d.mu.Unlock()
	case "failed":
		state["errorCode"], state["errorMessage"] = 400209, "custom allocation failed"
	}
	writeJSON(w, http.StatusOK, map[string]any{"operationId": op.id, "status": op.group.Outcome, "registrationState": state})
}

// DPSDeviceKey is the key DPS derives for device regID of a symmetric-key
// enrolment group whose key is groupKey, as Microsoft documents it:
// base64(HMAC-SHA256(base64-decoded group key, regID)).
func DPSDeviceKey(groupKey, regID string) (string, error) {
	gk, err := base64.StdEncoding.DecodeString(groupKey)
	return base64.StdEncoding.EncodeToString(hmacSum(sha256.New, gk, []byte(regID))), err
}
