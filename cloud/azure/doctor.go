package azure

import (
	"crypto/sha256"
	"strings"

	"github.com/credsign/credsign/cloud"
)

// Diagnose implements cloud.Diagnoser. Azure: ClientId deviceId[/moduleId], username
// "hub/deviceId[/moduleId]/?api-version=V", password
// "SharedAccessSignature sr=urlenc(resource)&sig=urlenc(b64(HMAC-SHA256(b64d(key), sr+"\n"+se)))&se=SE[&skn=policy]".
func (Backend) Diagnose(d *cloud.Doctor) {
	hub, dev, mod := d.P.Str("hubHost", ""), d.P.Str("deviceId", ""), d.P.Str("moduleId", "")
	policy := d.P.Str("policyName", "")
	id := dev
	if mod != "" {
		id += "/" + mod
	}
	d.CompareField(cloud.PartClientID, d.Got.ClientID, id, nil)
	userPrefix := hub + "/" + id + "/?api-version="
	switch {
	case strings.HasPrefix(d.Got.Username, userPrefix) && len(d.Got.Username) > len(userPrefix):
		d.Add(cloud.PartUsername, cloud.StatusMatch, cloud.Certain, "the username matches the recipe's form %s{version}", userPrefix)
	default:
		d.CompareField(cloud.PartUsername, d.Got.Username, userPrefix+d.P.Str("apiVersion", "2021-04-12"), map[string]string{
			hub + "/" + id:       "the ?api-version= part is missing",
			hub + "/" + id + "/": "the ?api-version= part is missing",
			id:                   "the hub host is missing",
		})
	}

	resource := hub + "/devices/" + dev
	if mod != "" {
		resource += "/modules/" + mod
	}
	sr := string(cloud.AppendQueryEscape(nil, resource))
	token, isSAS := strings.CutPrefix(d.Got.Password, "SharedAccessSignature ")
	if !isSAS {
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the password does not start with \"SharedAccessSignature \": it is not a SAS token (a connection string or a bare key sent instead?)")
		return
	}
	f := cloud.TokenFields(token)
	se, hasSE := f["se"]
	switch gotSR := f["sr"]; {
	case gotSR == sr, strings.EqualFold(gotSR, sr):
	case gotSR == resource:
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the sr %q is not URL-encoded (the recipe's is %q)", cloud.Clip(gotSR), sr)
	default:
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the sr %q names another resource than the recipe's %q", cloud.Clip(gotSR), sr)
	}
	if skn, hasSKN := f["skn"]; hasSKN != (policy != "") || (hasSKN && skn != string(cloud.AppendQueryEscape(nil, policy))) {
		if policy == "" {
			d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the token names a policy (skn=%q) but the device's key is a device key", cloud.Clip(skn))
		} else {
			d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the token must name the policy %q in skn (the key is a policy key)", policy)
		}
	}
	if !hasSE {
		d.Add(cloud.PartPassword, cloud.StatusDiffers, cloud.Likely, "the token has no se (expiry)")
		return
	}
	d.CheckExpiry(cloud.PartPassword, "se", se)

	seDim, seVals := cloud.UnitDim("se", se)
	srDim := cloud.Dim{{}, {Cause: "the raw resource was signed instead of the URL-encoded sr"}}
	dims := []cloud.Dim{seDim, srDim, d.KeyDim(), cloud.SigDim}
	sel, ok := d.Search(dims, f["sig"], func(s []int) string {
		res := sr
		if s[1] == 1 {
			res = resource
		}
		return cloud.EncodeSig(s[3], cloud.MAC(sha256.New, d.KeyFor(s[2]), res+"\n"+seVals[s[0]]))
	})
	d.PasswordFinding(dims, sel, ok, " with the se "+se+" the token sends", "")
}
