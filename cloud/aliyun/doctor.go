package aliyun

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/credsign/credsign/cloud"
)

// Diagnose implements cloud.Diagnoser. Aliyun: ClientId "id|securemode=M,signmethod=S,timestamp=T|", username
// "deviceName&productKey", password hex(HMAC-S(secret, content)).
func (Backend) Diagnose(d *cloud.Doctor) {
	pk, dn := d.P.Str("productKey", ""), d.P.Str("deviceName", "")
	wantID := d.P.Str("clientId", pk+"."+dn)
	method := d.P.Str("signMethod", "hmacsha256")
	mode := d.P.Int("secureMode", 2)

	// ClientId.
	id, rest, hasParams := strings.Cut(d.Got.ClientID, "|")
	kv := map[string]string{}
	if hasParams {
		rest = strings.TrimSuffix(rest, "|")
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			kv[strings.ToLower(k)] = v
		}
	}
	ts, hasTS := kv["timestamp"]
	sentMethod, hasMethod := kv["signmethod"]
	switch {
	case !hasParams:
		d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Likely, "the ClientId has no \"|securemode=M,signmethod=S,timestamp=T|\" part: the platform cannot tell how the password was signed")
	case id != wantID:
		d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Likely, "the ClientId's id is %q, the device's clientId is %q (the id is signed, so the password is checked with the one sent)", cloud.Clip(id), wantID)
	case !hasMethod || cloud.HashName(sentMethod) == "":
		d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Likely, "the ClientId's signmethod %q is not hmacsha256, hmacsha1 or hmacmd5", cloud.Clip(sentMethod))
	case kv["securemode"] != strconv.Itoa(mode):
		d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Likely, "the ClientId says securemode=%s, the device is configured for securemode=%d (2 = TLS, 3 = plain TCP): the broker refuses a mode that does not match the connection", cloud.Clip(kv["securemode"]), mode)
	default:
		note := ""
		if sentMethod != method {
			note = fmt.Sprintf(" (it declares signmethod=%s where the device is configured for %s; the platform accepts any of the three)", sentMethod, method)
		}
		d.Add(cloud.PartClientID, cloud.StatusMatch, cloud.Certain, "the ClientId matches the recipe's form%s", note)
	}
	if hasTS {
		switch {
		case !cloud.Digits(ts):
			d.Add(cloud.PartClientID, cloud.StatusNote, cloud.Likely, "the ClientId's timestamp %q is not decimal", cloud.Clip(ts))
		case len(ts) <= 10:
			d.Add(cloud.PartClientID, cloud.StatusNote, cloud.Likely, "the ClientId's timestamp %s looks like seconds where the recipe writes milliseconds; aliyun does not check it, so only the password's consistency with it matters", ts)
		default:
			if n, err := strconv.ParseInt(ts, 10, 64); err == nil {
				skew := time.UnixMilli(n).Sub(d.Now)
				if skew > 5*time.Minute || skew < -5*time.Minute {
					dir := "ahead"
					if skew < 0 {
						dir = "behind, or the triple is old"
					}
					d.Add(cloud.PartClientID, cloud.StatusNote, cloud.Likely, "the timestamp %s is %s %s of %s (aliyun does not check it)", ts, cloud.Human(skew), dir, d.Now.Format(time.RFC3339))
				}
			}
		}
	}

	// Username.
	d.CompareField(cloud.PartUsername, d.Got.Username, dn+"&"+pk, map[string]string{
		pk + "&" + dn: "productKey and deviceName in the wrong order (the username is deviceName&productKey)",
		pk + "." + dn: "the ClientId's productKey.deviceName used as the username",
	})

	// Password.
	if !hasMethod || cloud.HashName(sentMethod) == "" {
		sentMethod = method
	}
	signedID := id
	if !hasParams {
		signedID = wantID
	}
	mDim, methods := cloud.MethodDim(sentMethod, []string{"hmacsha256", "hmacsha1", "hmacmd5"}, cloud.HashName)
	tsDim, tsVals := cloud.UnitDim("timestamp", ts)
	if !hasTS {
		tsVals = []string{""}
	}
	contentDim := cloud.Dim{{},
		{Cause: "the whole ClientId (with its |securemode=…| part) was signed as clientId instead of the bare id"},
		{Cause: "the timestamp was left out of the signed content while the ClientId sends one"},
		{Cause: "productKey and deviceName were swapped in the signed content"},
	}
	encDim := cloud.HexDim(cloud.Variation{Cause: "upper-case hex, which the platform accepts", Benign: true})
	keyDim := d.KeyDim()
	dims := []cloud.Dim{mDim, tsDim, contentDim, keyDim, encDim}
	sel, ok := d.Search(dims, d.Got.Password, func(s []int) string {
		key := d.KeyFor(s[3])
		if key == nil {
			return ""
		}
		t := tsVals[s[1]]
		cid, p, n := signedID, pk, dn
		switch s[2] {
		case 1:
			if !hasParams {
				return ""
			}
			cid = d.Got.ClientID
		case 2:
			if !hasTS {
				return ""
			}
			t = ""
		case 3:
			p, n = dn, pk
		}
		content := "clientId" + cid + "deviceName" + n + "productKey" + p
		if t != "" {
			content += "timestamp" + t
		}
		return cloud.EncodeHex(s[4], cloud.MAC(cloud.HashFor(methods[s[0]]), key, content))
	})
	context := ""
	if hasTS {
		context = " with the timestamp " + ts + " the ClientId sends"
		if cloud.Digits(ts) && len(ts) >= 13 {
			context += " (read as milliseconds)"
		}
	}
	d.PasswordFinding(dims, sel, ok, context, cloud.HexShape(d.Got.Password, sentMethod))
}
