package huawei

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/credsign/credsign/cloud"
)

// Diagnose implements cloud.Diagnoser. Huawei: ClientId "deviceId_0_F_YYYYMMDDHH", username deviceId, password
// hex(HMAC-SHA256(key = timestamp, msg = secret)).
func (Backend) Diagnose(d *cloud.Doctor) {
	deviceID := d.P.Str("deviceId", "")
	check := d.P.Bool("checkTimestamp", true)
	d.CompareField(cloud.PartUsername, d.Got.Username, deviceID, nil)

	cid := d.Got.ClientID
	ts, flag := "", byte(0)
	if n := len(cid); n >= len(deviceID)+15 && cid[:n-15] == deviceID && cid[n-15:n-12] == "_0_" && cid[n-11] == '_' {
		ts, flag = cid[n-10:], cid[n-12]
	}
	var stamp time.Time
	var err error
	if ts != "" {
		stamp, err = time.Parse("2006010215", ts)
	}
	switch {
	case ts == "" || err != nil:
		d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Likely, "the ClientId %q is not deviceId_0_F_YYYYMMDDHH for deviceId %q", cloud.Clip(cid), deviceID)
	case flag != '0' && flag != '1':
		d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Likely, "the ClientId's flag is %q, not 0 or 1", string(flag))
	case flag == '1':
		hour := d.Now.Truncate(time.Hour)
		off := stamp.Sub(hour)
		switch {
		case off == 0:
			d.Add(cloud.PartClientID, cloud.StatusMatch, cloud.Certain, "the ClientId matches the Recipe: the timestamp %s is the current UTC hour", ts)
		case off == 8*time.Hour:
			d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Likely, "the timestamp %s is 8 hours ahead of the UTC hour %s: local time (UTC+8, China) was written instead of UTC", ts, hour.Format("2006010215"))
		case off > 0:
			d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Likely, "the timestamp %s is %s ahead of the UTC hour %s: the device clock is ahead (or set to a time zone other than UTC)", ts, cloud.Human(off), hour.Format("2006010215"))
		default:
			d.Add(cloud.PartClientID, cloud.StatusDiffers, cloud.Likely, "the timestamp %s is %s behind the UTC hour %s and the platform checks it (flag 1): a stale triple, or the device clock is behind (or in a time zone west of UTC)", ts, cloud.Human(off), hour.Format("2006010215"))
		}
	default:
		note := ""
		if check {
			note = " (the device is configured for flag 1; with 0 the platform does not check the timestamp)"
		}
		d.Add(cloud.PartClientID, cloud.StatusMatch, cloud.Certain, "the ClientId matches the recipe's form with flag 0: the timestamp is not checked%s", note)
	}
	if ts == "" || err != nil {
		st := HourStamp(d.Now)
		ts = string(st[:])
	}

	// The hour signed may differ from the hour sent.
	hourDim := cloud.Dim{{}}
	hours := []string{ts}
	if st, err := time.Parse("2006010215", ts); err == nil {
		for _, h := range []int{8, -8, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 9, -9, 10, -10, 11, -11, 12, -12, 13, -13, 14} {
			other := st.Add(time.Duration(h) * time.Hour).Format("2006010215")
			hours = append(hours, other)
			why := ""
			if h == 8 {
				why = " (local time UTC+8 in the password, UTC in the ClientId)"
			}
			hourDim = append(hourDim, cloud.Variation{Cause: fmt.Sprintf("the password was signed with the hour %s, the ClientId sends %s%s", other, ts, why)})
		}
	}
	swapDim := cloud.Dim{{}, {Cause: "key and message swapped: the HMAC was keyed by the secret over the timestamp (the timestamp is the key, the secret the message)"}}
	encDim := cloud.Dim{{}, cloud.UpperHex}
	dims := []cloud.Dim{hourDim, swapDim, encDim}
	sel, ok := d.Search(dims, d.Got.Password, func(s []int) string {
		var sum []byte
		if s[1] == 1 {
			sum = cloud.MAC(sha256.New, d.Key, hours[s[0]])
		} else {
			sum = cloud.MAC(sha256.New, []byte(hours[s[0]]), d.Secret)
		}
		return cloud.EncodeHex(s[2], sum)
	})
	d.PasswordFinding(dims, sel, ok, " with the hour "+ts+" the ClientId sends", cloud.HexShape(d.Got.Password, "hmacsha256"))
}
