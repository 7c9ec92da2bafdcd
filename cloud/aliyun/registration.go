package aliyun

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/credsign/credsign/cloud/registration"
)

// Alibaba Cloud IoT Platform, dynamic registration of a directly connected
// device with the product secret, pre-registration variant ("one secret per
// product", 一型一密预注册) over HTTPS. Sources: Alibaba Cloud docs
// "HTTPS-based dynamic registration of directly connected devices" (直连设备
// 使用HTTPS动态注册; help.aliyun.com/document_detail/89298, "Register
// devices") and its Java sample "Dynamic registration for
// unique-certificate-per-product via HTTPS"
// (help.aliyun.com/en/iot/use-cases/https-based-dynamic-registration):
//
//	POST https://iot-auth.{regionId}.aliyuncs.com/auth/register/device
//	Content-Type: application/x-www-form-urlencoded
//	productKey, deviceName, random, sign, signMethod (iotkit-embedded's order)
//	sign = upperhex(HMAC_signMethod(productSecret, "deviceName" + dn + "productKey" + pk + "random" + random))
//	→ {"code": 200, "data": {"productKey", "deviceName", "deviceSecret"}, "message": "success"}
//
// The device must have been created in the product beforehand; the answer
// is its DeviceSecret.

// AliyunRegion is the default region of aliyun-dynamic.
const AliyunRegion = "cn-shanghai"

var aliyunSignMethods = map[string]func() hash.Hash{"hmacsha256": sha256.New, "hmacsha1": sha1.New, "hmacmd5": md5.New}

// aliyunSign is the sign of a dynamic registration, in upper-case hex as
// both official C SDKs send it: aliyun/iotkit-embedded
// src/dynamic_register/dynreg.c _calc_dynreg_sign formats the HMAC with
// infra_hex2str (src/infra/infra_string.c, "0123456789ABCDEF").
func aliyunSign(method, productSecret, productKey, deviceName, random string) string {
	m := hmac.New(aliyunSignMethods[method], []byte(productSecret))
	m.Write([]byte("deviceName" + deviceName + "productKey" + productKey + "random" + random))
	return strings.ToUpper(hex.EncodeToString(m.Sum(nil)))
}

// aliyunAnswer is the JSON answer of /auth/register/device.
type aliyunAnswer struct {
	Code any `json:"code"`
	Data *struct {
		ProductKey   string `json:"productKey"`
		DeviceName   string `json:"deviceName"`
		DeviceSecret string `json:"deviceSecret"`
	} `json:"data"`
}

// parseAliyun decodes an answer: the device secret on code 200, or the
// code otherwise.
func parseAliyun(b []byte) (secret, code string, err error) {
	var a aliyunAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return "", "", fmt.Errorf("answer is not JSON")
	}
	code = registration.Safe(a.Code)
	if code != "200" {
		if code == "" {
			return "", "", fmt.Errorf("answer has no code")
		}
		return "", code, nil
	}
	if a.Data == nil || a.Data.DeviceSecret == "" {
		return "", code, fmt.Errorf("code 200 without data.deviceSecret")
	}
	return a.Data.DeviceSecret, code, nil
}

// aliyunHost is the host of an aliyun-dynamic call: params.host, else the
// region's iot-auth endpoint.
func aliyunHost(p map[string]string) string {
	return registration.Param(p, "host", "iot-auth."+registration.Param(p, "regionId", AliyunRegion)+".aliyuncs.com")
}

func registerAliyun(ctx context.Context, c *registration.Client, r registration.Request) (registration.Result, error) {
	pk := r.Params["productKey"]
	dn := registration.Param(r.Params, "deviceName", r.DeviceID)
	method := registration.Param(r.Params, "signMethod", "hmacsha256")
	host := aliyunHost(r.Params)
	what := "aliyun-dynamic " + host
	if dn == "" {
		return registration.Result{}, fmt.Errorf("%s: %w: no device name (device id or params.deviceName)", what, registration.ErrInvalid)
	}
	u := "https://" + host + "/auth/register/device"
	a, err := c.Send(ctx, what+" register "+pk+"/"+dn, func() (*http.Request, error) {
		var nonce [8]byte
		if _, err := io.ReadFull(c.Random(), nonce[:]); err != nil {
			return nil, fmt.Errorf("random: %w", err)
		}
		random := hex.EncodeToString(nonce[:])
		// The fields in the order of iotkit-embedded's dynreg.c
		// ("productKey=%s&deviceName=%s&random=%s&sign=%s&signMethod=%s").
		form := "productKey=" + url.QueryEscape(pk) + "&deviceName=" + url.QueryEscape(dn) + "&random=" + random +
			"&sign=" + aliyunSign(method, r.GroupSecret, pk, dn, random) + "&signMethod=" + method
		return registration.NewRequest(http.MethodPost, u, "application/x-www-form-urlencoded", []byte(form))
	})
	if err != nil {
		return registration.Result{}, err
	}
	secret, code, perr := parseAliyun(a.Body)
	switch {
	case a.Status >= 400 && a.Status < 500:
		return registration.Result{}, fmt.Errorf("%s: device %s/%s: %w: HTTP %d, code %s", what, pk, dn, registration.ErrRefused, a.Status, registration.OrText(code, "none"))
	case a.Status != http.StatusOK:
		return registration.Result{}, fmt.Errorf("%s: device %s/%s: %w: unexpected HTTP %d", what, pk, dn, registration.ErrUnavailable, a.Status)
	case perr != nil:
		return registration.Result{}, fmt.Errorf("%s: device %s/%s: %w: %w", what, pk, dn, registration.ErrUnavailable, perr)
	case secret == "":
		return registration.Result{}, fmt.Errorf("%s: device %s/%s: %w: code %s", what, pk, dn, registration.ErrRefused, code)
	}
	return registration.Result{Params: map[string]any{"productKey": pk, "deviceName": dn}, Secret: secret}, nil
}

// KindDynamic is the registration kind of Alibaba Cloud IoT dynamic
// registration with the product secret. Params: productKey (required),
// regionId (default cn-shanghai), host (default
// iot-auth.{regionId}.aliyuncs.com), deviceName (default the device id),
// signMethod (hmacsha256 default, hmacsha1, hmacmd5). The group secret is
// the product secret, any non-empty text.
const KindDynamic = "aliyun-dynamic"

// RegistrationKinds implements cloud.Registerer.
func (Backend) RegistrationKinds() []registration.Kind {
	return []registration.Kind{{Name: KindDynamic, Required: []string{"productKey"}, Optional: []string{"regionId", "host", "deviceName", "signMethod"},
		// iot-auth.{regionId}.aliyuncs.com, and instance endpoints under
		// aliyuncs.com.
		Hosts: []string{"*.aliyuncs.com"}, Host: aliyunHost,
		Checks: map[string]func(string) string{"signMethod": checkSignMethod}, Register: registerAliyun}}
}

// checkSignMethod says why a sign method is not one of aliyunSignMethods.
func checkSignMethod(v string) string {
	if _, ok := aliyunSignMethods[v]; ok {
		return ""
	}
	return "want hmacsha256, hmacsha1 or hmacmd5"
}
