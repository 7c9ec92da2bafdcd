package azure

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/credsign/credsign/cloud"
)

// DeriveDeviceKey implements cloud.GroupKeyDeriver: the device's
// registration ID is its deviceId param, else its ID.
func (Backend) DeriveDeviceKey(groupKey, deviceID string, params map[string]any) (string, error) {
	if v, ok := params["deviceId"].(string); ok && v != "" {
		deviceID = v
	}
	return DeriveGroupKey(groupKey, deviceID)
}

// DeviceIDParam implements cloud.GroupKeyDeriver: deviceId, the DPS
// registration ID.
func (Backend) DeviceIDParam() string { return "deviceId" }

// DeriveGroupKey returns the device key of an Azure Device Provisioning
// Service symmetric-key group enrollment:
// base64(HMAC-SHA256(base64decode(groupKey), UTF-8(registrationID))).
// Azure IoT Hub devices enrolled through such a group sign with this key,
// so credsign keeps only the group key and derives the rest when it signs.
// The error never contains the key.
func DeriveGroupKey(groupKey, registrationID string) (string, error) {
	key, err := base64.StdEncoding.DecodeString(groupKey)
	if err != nil || len(key) == 0 {
		return "", &cloud.InvalidError{Field: "secret", Reason: "the group key must be non-empty standard base64"}
	}
	if registrationID == "" {
		return "", fmt.Errorf("derive group key: empty registration id")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}
