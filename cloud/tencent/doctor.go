package tencent

import (
	"strings"

	"github.com/credsign/credsign/cloud"
)

// Diagnose implements cloud.Diagnoser. Tencent: ClientId productId+deviceName, username
// "clientId;sdkAppId;connId;expiry", password
// hex(HMAC(b64d(PSK), username)) + ";" + method.
func (Backend) Diagnose(d *cloud.Doctor) {
	pid, dn := d.P.Str("productId", ""), d.P.Str("deviceName", "")
	method := d.P.Str("signMethod", "hmacsha256")
	d.CompareField(cloud.PartClientID, d.Got.ClientID, pid+dn, map[string]string{
		dn + pid:       "productId and deviceName in the wrong order (the ClientId is productId + deviceName)",
		pid + "." + dn: "a separator between productId and deviceName (there is none)",
		pid + "/" + dn: "a separator between productId and deviceName (there is none)",
	})

	f := strings.Split(d.Got.Username, ";")
	if len(f) != 4 {
		d.Add(cloud.PartUsername, cloud.StatusDiffers, cloud.Likely, "the username has %d ;-separated fields, the recipe's four: clientId;sdkAppId;connId;expiry", len(f))
	} else {
		switch {
		case f[0] != pid+dn:
			d.Add(cloud.PartUsername, cloud.StatusDiffers, cloud.Likely, "the username starts with %q, the recipe with the ClientId %q", cloud.Clip(f[0]), pid+dn)
		case !cloud.Digits(f[1]):
			d.Add(cloud.PartUsername, cloud.StatusDiffers, cloud.Likely, "the username's sdkAppId %q is not decimal (12010126 or 21010406)", cloud.Clip(f[1]))
		case CheckConnID(f[2]) != nil:
			d.Add(cloud.PartUsername, cloud.StatusDiffers, cloud.Likely, "the username's connId %q is not 5 letters or digits", cloud.Clip(f[2]))
		default:
			d.Add(cloud.PartUsername, cloud.StatusMatch, cloud.Certain, "the username has the recipe's form clientId;sdkAppId;connId;expiry")
		}
		d.CheckExpiry(cloud.PartUsername, "expiry", f[3])
	}

	// The password signs the username as sent.
	sig, sentMethod, hasMethod := strings.Cut(d.Got.Password, ";")
	if !hasMethod || cloud.HashName(sentMethod) == "" || sentMethod == "hmacmd5" {
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the password does not end in \";hmacsha256\" or \";hmacsha1\" naming its HMAC")
		sentMethod = method
	}
	mDim, methods := cloud.MethodDim(sentMethod, []string{"hmacsha256", "hmacsha1"}, cloud.HashName)
	encDim := cloud.HexDim(cloud.UpperHex)
	dims := []cloud.Dim{mDim, d.KeyDim(), encDim}
	sel, ok := d.Search(dims, sig, func(s []int) string {
		return cloud.EncodeHex(s[2], cloud.MAC(cloud.HashFor(methods[s[0]]), d.KeyFor(s[1]), d.Got.Username))
	})
	d.PasswordFinding(dims, sel, ok, " over the username as sent", cloud.HexShape(sig, sentMethod))
}
