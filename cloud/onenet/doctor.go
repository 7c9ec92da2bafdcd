package onenet

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/credsign/credsign/cloud"
)

// Diagnose implements cloud.Diagnoser. OneNET: ClientId deviceName, username productId, password
// "version=2018-10-31&res=urlenc(res)&et=ET&method=M&sign=urlenc(b64(HMAC-M(b64d(key), et\nmethod\nres\nversion)))".
func (Backend) Diagnose(d *cloud.Doctor) {
	pid, dn := d.P.Str("productId", ""), d.P.Str("deviceName", "")
	method := d.P.Str("signMethod", "sha256")
	swapped := d.Got.ClientID == pid && d.Got.Username == dn && pid != dn
	if swapped {
		d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Certain, "the ClientId is the productId and the username the deviceName: swapped (ClientId = deviceName, username = productId)")
	} else {
		d.CompareField(cloud.PartClientID, d.Got.ClientID, dn, nil)
		d.CompareField(cloud.PartUsername, d.Got.Username, pid, nil)
	}

	f := cloud.TokenFields(d.Got.Password)
	if v := f["version"]; v != onenetVersion {
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the token's version is %q; OneNET accepts only %s", cloud.Clip(v), onenetVersion)
	}
	sentMethod := f["method"]
	switch sentMethod {
	case "sha256", "sha1", "md5":
		if sentMethod != method {
			d.Add(cloud.PartPassword, cloud.StatusNote, cloud.Likely, "the token says method=%s where the device is configured for %s (the platform checks the method the token names)", sentMethod, method)
		}
	case "hmacsha256", "hmacsha1", "hmacmd5":
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "method=%s: OneNET names it %s, without hmac", sentMethod, strings.TrimPrefix(sentMethod, "hmac"))
	default:
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the token's method %q is not sha256, sha1 or md5", cloud.Clip(sentMethod))
		sentMethod = method
	}
	devRes := "products/" + pid + "/devices/" + dn
	prodRes := "products/" + pid
	wantRes := devRes
	if d.P.Str("keyScope", "device") == "product" {
		wantRes = prodRes
	}
	otherRes := devRes
	if wantRes == devRes {
		otherRes = prodRes
	}
	switch gotRes := f["res"]; gotRes {
	case url.QueryEscape(wantRes):
	case wantRes:
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the res %q is not URL-encoded", cloud.Clip(gotRes))
	case url.QueryEscape(otherRes), otherRes:
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the res %q is for a %s key, but the device is configured with keyScope %s (res %q)", cloud.Clip(gotRes), map[bool]string{true: "device", false: "product"}[otherRes == devRes], d.P.Str("keyScope", "device"), wantRes)
	default:
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the res %q is not the recipe's %q", cloud.Clip(gotRes), url.QueryEscape(wantRes))
	}
	et, hasET := f["et"]
	if !hasET {
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the token has no et (expiry)")
		return
	}
	d.CheckExpiry(cloud.PartPassword, "et", et)

	signedMethod := strings.TrimPrefix(f["method"], "hmac")
	if cloud.HashName("hmac"+signedMethod) == "" {
		signedMethod = sentMethod
	}
	label := func(m string) string { return "HMAC-" + strings.ToUpper(m) }
	mDim, methods := cloud.MethodDim(strings.TrimPrefix(sentMethod, "hmac"), []string{"sha256", "sha1", "md5"}, label)
	etDim, etVals := cloud.UnitDim("et", et)
	resDim := cloud.Dim{{}, {Cause: fmt.Sprintf("the res signed is %q, the %s key's, not the one the device is configured for", otherRes, map[bool]string{true: "device", false: "product"}[otherRes == devRes])}}
	orderDim := cloud.Dim{{}, {Cause: "the fields were signed in the token's order (version, res, et, method) instead of et, method, res, version"}}
	dims := []cloud.Dim{mDim, d.KeyDim(), etDim, resDim, orderDim, cloud.SigDim}
	sel, ok := d.Search(dims, f["sign"], func(s []int) string {
		res := wantRes
		if s[3] == 1 {
			res = otherRes
		}
		msg := etVals[s[2]] + "\n" + signedMethod + "\n" + res + "\n" + onenetVersion
		if s[4] == 1 {
			msg = onenetVersion + "\n" + res + "\n" + etVals[s[2]] + "\n" + signedMethod
		}
		return cloud.EncodeSig(s[5], cloud.MAC(cloud.HashFor(methods[s[0]]), d.KeyFor(s[1]), msg))
	})
	d.PasswordFinding(dims, sel, ok, " with the et "+et+" the token sends", "")
}
