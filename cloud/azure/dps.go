package azure

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/credsign/credsign/cloud/registration"
	"github.com/credsign/credsign/internal/retry"
)

// Azure IoT Hub Device Provisioning Service, HTTPS registration with a
// symmetric-key enrollment group. Sources: Microsoft's REST reference
// "Runtime Registration - Register Device" and "Runtime Registration -
// Operation Status Lookup"
// (learn.microsoft.com/rest/api/iot-dps/device/runtime-registration, which
// lists api-version 2021-10-01), "Control access to Azure IoT Hub Device
// Provisioning Service with SAS tokens" and "How to provision devices using
// symmetric key enrollment groups" (learn.microsoft.com/azure/iot-dps):
//
//	PUT https://{host}/{idScope}/registrations/{registrationId}/register?api-version=2021-10-01
//	body {"registrationId": registrationId}
//	Authorization: SharedAccessSignature sr={urlenc(idScope/registrations/registrationId)}&sig={urlenc(sig)}&se={expiry}&skn=registration
//	sig = b64(HMAC-SHA256(b64d(deviceKey), sr + "\n" + se)), deviceKey = DeriveGroupKey(groupKey, registrationId)
//	→ 202 {"operationId", "status": "assigning"} with Retry-After
//	GET https://{host}/{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=2021-10-01
//	→ 202 "assigning" again, or 200 {"status": "assigned", "registrationState": {"assignedHub", "deviceId", …}}

// DPSHost is the global DPS device endpoint.
const DPSHost = "global.azure-devices-provisioning.net"

// DPSAPIVersion is the runtime registration API version sent.
const DPSAPIVersion = "2021-10-01"

// dpsOperation is a RegistrationOperationStatus.
type dpsOperation struct {
	OperationID       string `json:"operationId"`
	Status            string `json:"status"`
	RegistrationState *struct {
		RegistrationID string `json:"registrationId"`
		AssignedHub    string `json:"assignedHub"`
		DeviceID       string `json:"deviceId"`
		Status         string `json:"status"`
		Substatus      string `json:"substatus"`
		ErrorCode      any    `json:"errorCode"`
	} `json:"registrationState"`
}

// dpsErrorDetails is a ProvisioningServiceErrorDetails.
type dpsErrorDetails struct {
	ErrorCode  any    `json:"errorCode"`
	TrackingID string `json:"trackingId"`
}

// parseDPSOperation decodes a RegistrationOperationStatus.
func parseDPSOperation(b []byte) (dpsOperation, error) {
	var op dpsOperation
	if err := json.Unmarshal(b, &op); err != nil {
		return dpsOperation{}, fmt.Errorf("answer is not a RegistrationOperationStatus")
	}
	if op.Status == "" {
		return dpsOperation{}, fmt.Errorf("answer has no status")
	}
	return op, nil
}

// regIDRE is the form of a DPS registration id (Register Device's
// DeviceRegistration.registrationId: up to 128 alphanumerics and . _ : -,
// no special character first or last).
var regIDRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._:-]{0,126}[A-Za-z0-9])?$`)

// hostRE matches a host name a DPS may assign (an IoT hub host).
var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?$`)

// dpsFailure describes a DPS error answer by status, error code and
// tracking id.
func dpsFailure(a registration.Answer) string {
	var d dpsErrorDetails
	_ = json.Unmarshal(a.Body, &d)
	out := "HTTP " + strconv.Itoa(a.Status)
	if c := registration.Safe(d.ErrorCode); c != "" {
		out += ", errorCode " + c
	}
	if t := registration.Safe(d.TrackingID); t != "" {
		out += ", trackingId " + t
	}
	return out
}

func isBase64(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) > 0
}

// dpsSAS returns the SharedAccessSignature of a DPS registration.
func dpsSAS(deviceKey, idScope, regID string, expiry time.Time) (string, error) {
	key, err := base64.StdEncoding.DecodeString(deviceKey)
	if err != nil {
		return "", fmt.Errorf("device key is not base64")
	}
	sr := url.QueryEscape(idScope + "/registrations/" + regID)
	se := strconv.FormatInt(expiry.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sr + "\n" + se))
	sig := base64.StdEncoding.EncodeToString(m.Sum(nil))
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + se + "&skn=registration", nil
}

func registerDPS(ctx context.Context, c *registration.Client, r registration.Request) (registration.Result, error) {
	host := registration.Param(r.Params, "host", DPSHost)
	scope := r.Params["idScope"]
	regID := registration.Param(r.Params, "registrationId", r.DeviceID)
	what := "azure-dps " + host
	if !regIDRE.MatchString(regID) {
		return registration.Result{}, fmt.Errorf("%s: %w: the registration id (device id or params.registrationId) must be 1 to 128 letters, digits or . _ : - and begin and end with a letter or digit", what, registration.ErrInvalid)
	}
	deviceKey, err := DeriveGroupKey(r.GroupSecret, regID)
	if err != nil {
		return registration.Result{}, fmt.Errorf("%s: %w: %w", what, registration.ErrInvalid, err)
	}
	base := "https://" + host + "/" + url.PathEscape(scope) + "/registrations/" + url.PathEscape(regID)
	body, _ := json.Marshal(map[string]string{"registrationId": regID})
	ttl := registration.OrDuration(c.SASTTL, time.Hour)
	build := func(method, u string, body []byte) func() (*http.Request, error) {
		return func() (*http.Request, error) {
			sas, err := dpsSAS(deviceKey, scope, regID, c.Clock().Add(ttl))
			if err != nil {
				return nil, err
			}
			req, err := registration.NewRequest(method, u, "application/json; charset=utf-8", body)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", sas)
			return req, nil
		}
	}
	a, err := c.Send(ctx, what+" register "+regID, build(http.MethodPut, base+"/register?api-version="+DPSAPIVersion, body))
	if err != nil {
		return registration.Result{}, err
	}
	for polls := 0; ; polls++ {
		if a.Status != http.StatusOK && a.Status != http.StatusAccepted {
			if a.Status >= 400 && a.Status < 500 {
				return registration.Result{}, fmt.Errorf("%s: registration %s: %w: %s", what, regID, registration.ErrRefused, dpsFailure(a))
			}
			return registration.Result{}, fmt.Errorf("%s: registration %s: %w: unexpected HTTP %d", what, regID, registration.ErrUnavailable, a.Status)
		}
		op, err := parseDPSOperation(a.Body)
		if err != nil {
			return registration.Result{}, fmt.Errorf("%s: registration %s: %w: %w", what, regID, registration.ErrUnavailable, err)
		}
		switch op.Status {
		case "assigned":
			st := op.RegistrationState
			if st == nil || !hostRE.MatchString(st.AssignedHub) || st.DeviceID == "" {
				return registration.Result{}, fmt.Errorf("%s: registration %s: %w: assigned without a valid assignedHub and deviceId", what, regID, registration.ErrUnavailable)
			}
			return registration.Result{Params: map[string]any{"hubHost": st.AssignedHub, "deviceId": st.DeviceID}}, nil
		case "failed", "disabled":
			detail := ""
			if st := op.RegistrationState; st != nil {
				if code := registration.Safe(st.ErrorCode); code != "" {
					detail = ", errorCode " + code
				}
			}
			return registration.Result{}, fmt.Errorf("%s: registration %s: %w: status %s%s", what, regID, registration.ErrRefused, op.Status, detail)
		case "assigning", "unassigned":
		default:
			return registration.Result{}, fmt.Errorf("%s: registration %s: %w: unknown status %q", what, regID, registration.ErrUnavailable, registration.Safe(op.Status))
		}
		if op.OperationID == "" {
			return registration.Result{}, fmt.Errorf("%s: registration %s: %w: %s without an operationId", what, regID, registration.ErrUnavailable, op.Status)
		}
		wait, ok := retry.ParseAfter(a.Header.Get("Retry-After"), c.Clock())
		if !ok {
			wait = registration.OrDuration(c.PollInterval, 2*time.Second)
		}
		if err := c.Sleep(ctx, c.CapWait(wait)); err != nil {
			return registration.Result{}, fmt.Errorf("%s: registration %s still %s after %d polls: %w", what, regID, op.Status, polls, err)
		}
		u := base + "/operations/" + url.PathEscape(op.OperationID) + "?api-version=" + DPSAPIVersion
		if a, err = c.Send(ctx, what+" operation status "+regID, build(http.MethodGet, u, nil)); err != nil {
			return registration.Result{}, err
		}
	}
}

// KindDPS is the registration kind of Azure IoT Hub Device Provisioning
// Service with a symmetric-key enrollment group. Params: idScope
// (required), host (default global.azure-devices-provisioning.net),
// registrationId (default the device id). The group secret is the
// enrollment group's primary key, standard base64; devices keep no secret
// of their own (DeriveGroupKey).
const KindDPS = "azure-dps"

// RegistrationKinds implements cloud.Registerer.
func (Backend) RegistrationKinds() []registration.Kind {
	return []registration.Kind{{Name: KindDPS, Required: []string{"idScope"}, Optional: []string{"host", "registrationId"},
		// global.azure-devices-provisioning.net and the DPS instances' own
		// {name}.azure-devices-provisioning.net (Azure public cloud).
		Hosts: []string{"*.azure-devices-provisioning.net"}, Host: func(p map[string]string) string { return registration.Param(p, "host", DPSHost) },
		CheckSecret: checkGroupKey, Register: registerDPS}}
}

// checkGroupKey says why an enrollment group key is not standard base64.
func checkGroupKey(secret string) string {
	if isBase64(secret) {
		return ""
	}
	return "the enrollment group key must be standard base64"
}
