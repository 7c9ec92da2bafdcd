package service

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
)

// splitBySplit is how a device token's text was cut before
// splitDeviceToken (strings.Split, then a count of the parts): the oracle
// FuzzSplitDeviceToken holds it to.
func splitBySplit(text string) (deviceTokenFields, bool) {
	if rest, ok := strings.CutPrefix(text, deviceTokenV3); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 5 {
			return deviceTokenFields{}, false
		}
		expires, err := strconv.ParseInt(parts[3], 10, 64)
		if err != nil || expires == 0 {
			return deviceTokenFields{}, false
		}
		return deviceTokenFields{id: parts[0], device: parts[1], minted: parts[2], expires: expires, mac: parts[4]}, true
	}
	parts := strings.Split(strings.TrimPrefix(text, deviceTokenV2), ".")
	if len(parts) != 4 {
		return deviceTokenFields{}, false
	}
	return deviceTokenFields{id: parts[0], device: parts[1], minted: parts[2], mac: parts[3]}, true
}

// FuzzSplitDeviceToken: splitDeviceToken accepts the texts the split by
// strings.Split accepted, with the same parts; and b64Decode decodes
// each part as b64.DecodeString does.
func FuzzSplitDeviceToken(f *testing.F) {
	for _, s := range []string{
		"csd_2.0123abc.bGFtcC03.1800000000000000000.AAAA",
		"csd_3.0123abc.bGFtcC03.1800000000000000000.1900000000000000000.AAAA",
		"csd_3.id.dev.1.0.mac", "csd_3.id.dev.1.x.mac", "csd_2.a.b.c", "csd_2.a.b.c.d.e", "csd_2....", "csd_3.....",
		"csd_2.id." + strings.Repeat("QUFB", 80) + ".1.mac",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got, ok := splitDeviceToken(text)
		want, wantOK := splitBySplit(text)
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("%q: %+v %v, strings.Split gives %+v %v", text, got, ok, want, wantOK)
		}
		var buf [128]byte
		for _, part := range []string{got.device, got.mac, text} {
			dec, err := b64Decode(buf[:], part)
			want, wantErr := base64.RawURLEncoding.DecodeString(part)
			if (err == nil) != (wantErr == nil) || (err == nil && string(dec) != string(want)) {
				t.Fatalf("%q: b64Decode %q %v, DecodeString %q %v", part, dec, err, want, wantErr)
			}
		}
	})
}
