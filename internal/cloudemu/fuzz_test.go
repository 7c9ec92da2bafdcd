package cloudemu

import (
	"errors"
	"testing"
	"time"
)

// FuzzVerifiers: every verifier, on any CONNECT fields, accepts or refuses
// with one of the emulator's errors; never a panic. The seeds are the
// published triples of docs/clouds.md.
func FuzzVerifiers(f *testing.F) {
	f.Add("dev1", "123123", "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D")
	f.Add("mydevice", "thingidp@abcd123|mydevice|1583826857|MD5", "7f0e63d2c6e122100edde19e34e7df5b")
	f.Add("tuyalink_6c95875d0f5ba69607nzfl", "6c95875d0f5ba69607nzfl|signMethod=hmacSha256,timestamp=1700000000,secureMode=1,accessType=1", "1560ae9a5d22067b47f6e98347c6e408fd9e9b63cd6c1f354fedbe452b0375db")
	f.Add("d", "d?x-amz-customauthorizer-name=a&x-amz-customauthorizer-signature=AAAA&token=e30.e30.", "")
	f.Add("d", "u", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA")
	devs := finder(map[string]string{
		"products/123123":            "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw=",
		"abcd123/mydevice":           "ImSeCrEt0I1M2jkl",
		"6c95875d0f5ba69607nzfl":     "fb803786602df760",
		"authorizers/a":              "not a key",
		"authorizers/a/tokenKeyName": "token",
		"jwt/d":                      "d",
	})
	e := &Emulator{opts: Options{JWKS: []byte(`{"keys":[]}`)}}
	now := time.Unix(1600000000, 0)
	f.Fuzz(func(t *testing.T, clientID, username, password string) {
		check := func(name string, err error) {
			if err != nil && !errors.Is(err, ErrBadCredentials) && !errors.Is(err, ErrUnknownDevice) && !errors.Is(err, ErrExpired) &&
				name != "aws" { // an authorizer with a broken key is a configuration error
				t.Fatalf("%s: unexpected error kind: %v", name, err)
			}
		}
		_, err := verifyOneNET(clientID, username, password, now, devs)
		check("onenet", err)
		_, err = verifyBaidu(username, password, now, devs)
		check("baidu", err)
		_, err = verifyTuyaLegacy(clientID, username, password, devs)
		check("tuyalegacy", err)
		_, err = verifyTuya(clientID, username, password, devs)
		check("tuya", err)
		_, err = e.verifyToken(clientID, password, "", now, devs)
		check("jwt", err)
		_, err = e.verifyAWS(clientID, username, true, now, devs)
		check("aws", err)
	})
}
