package clouds

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzNormalizeParams: any JSON params object is either accepted with typed
// values of the declared types or refused with an *InvalidError; never a panic.
func FuzzNormalizeParams(f *testing.F) {
	f.Add("aliyun", `{"productKey":"pk","deviceName":"d","secureMode":3}`)
	f.Add("huawei", `{"deviceId":"d","checkTimestamp":"false","port":"1883"}`)
	f.Add("azure", `{"hubHost":"h","deviceId":"d","port":1e9}`)
	f.Add("tencent", `{"productId":"p","deviceName":"d","connId":"x;y"}`)
	f.Add("onenet", `{"productId":"p","deviceName":"d","keyScope":"product","tls":"true"}`)
	f.Add("baidu", `{"iotCoreId":"c","deviceKey":"d","signMethod":"SHA256"}`)
	f.Add("tuya", `{"deviceId":"d","region":"eu"}`)
	f.Add("jwt", `{"host":"h","claims":{"acl":[{"topic":"#"}]},"commandsTopic":"a/+/#"}`)
	f.Add("jwt", `{"host":"h","claims":"{\"exp\":1}"}`)
	f.Add("aws", `{"endpoint":"e","authorizerName":"a","tokenKeyName":"t","port":443}`)
	f.Fuzz(func(t *testing.T, cloud, doc string) {
		var raw map[string]any
		if json.Unmarshal([]byte(doc), &raw) != nil {
			return
		}
		p, err := NormalizeParams(cloud, raw)
		if err != nil {
			if !IsInvalid(err) {
				t.Fatalf("error %v is not an *InvalidError", err)
			}
			return
		}
		c, _ := LookupCloud(cloud)
		for name, v := range p {
			switch c.Spec(name).Type {
			case TypeString:
				_, ok := v.(string)
				if !ok {
					t.Fatalf("%s = %#v, want string", name, v)
				}
			case TypeInteger:
				if _, ok := v.(int); !ok {
					t.Fatalf("%s = %#v, want int", name, v)
				}
			case TypeBoolean:
				if _, ok := v.(bool); !ok {
					t.Fatalf("%s = %#v, want bool", name, v)
				}
			case TypeObject:
				if _, ok := v.(map[string]any); !ok {
					t.Fatalf("%s = %#v, want object", name, v)
				}
			}
		}
	})
}

// FuzzRecipes: every recipe, on any params, secret, time and TTL, either
// signs or refuses with an error that does not contain the secret; never a panic.
func FuzzRecipes(f *testing.F) {
	for _, c := range []string{"aliyun", "tencent", "huawei", "azure", "onenet", "baidu", "tuya", "jwt"} {
		f.Add(c, "id-1", "host.example", int64(1700000000123), int64(3600), testB64, "p2")
	}
	f.Add("aws", "id-1", "e.example", int64(1700000000123), int64(3600), testRSAPEM(f), "p2")
	key := testTokenKey(f, AlgEdDSA)
	f.Add("aliyun", "a|b", "", int64(-1), int64(0), "Zm9v", "")
	f.Fuzz(func(t *testing.T, cloud, id, host string, nowMs, ttlSec int64, secret, extra string) {
		// Also compare Huawei's allocation-free timestamp with time.Format.
		if now := time.UnixMilli(nowMs).UTC(); now.Year() >= 1970 && now.Year() <= 9999 {
			if st := hourStamp(now); string(st[:]) != now.Format("2006010215") {
				t.Fatalf("hourStamp(%s) = %s", now, st[:])
			}
		}
		params := map[string]any{
			"productKey": id, "deviceName": id, "productId": id, "deviceId": id, "hubHost": host,
			"iotCoreId": id, "deviceKey": id, "host": host, "endpoint": host, "authorizerName": id,
		}
		if extra != "" {
			params["moduleId"] = extra
			params["clientId"] = extra
		}
		c, ok := LookupCloud(cloud)
		if !ok {
			return
		}
		for k := range params {
			if c.Spec(k) == nil {
				delete(params, k)
			}
		}
		req := Request{Cloud: cloud, Params: params, Secret: secret, Now: time.UnixMilli(nowMs), TTL: time.Duration(ttlSec) * time.Second,
			TokenKey: key, Issuer: "https://credsign.example"}
		cred, err := Sign(req)
		if err != nil {
			if len(secret) >= 4 && strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q contains the secret", err)
			}
			return
		}
		if cred.ClientID == "" || cred.Username == "" || (cred.Password == "" && cloud != "aws") || cred.Host == "" || cred.Port == 0 ||
			cred.Topics.Telemetry == "" || cred.Topics.Commands == "" {
			t.Fatalf("incomplete credentials %+v", cred)
		}
		if cred.ExpiresAt != nil && cred.RefreshAfter.After(*cred.ExpiresAt) {
			t.Fatalf("refreshAfter %s after expiresAt %s", cred.RefreshAfter, cred.ExpiresAt)
		}
	})
}

// FuzzAppendQueryEscape: the allocation-free escaper matches url.QueryEscape.
func FuzzAppendQueryEscape(f *testing.F) {
	f.Add("myiothub.azure-devices.net/devices/my_device")
	f.Add("a+b/c=d e~f*g!'()%\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendQueryEscape(nil, s)), url.QueryEscape(s); got != want {
			t.Fatalf("appendQueryEscape(%q) = %q, want %q", s, got, want)
		}
	})
}
