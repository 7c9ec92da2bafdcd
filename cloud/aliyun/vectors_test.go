package aliyun_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/aliyun"
	"github.com/credsign/credsign/cloud/cloudtest"
)

// TestAliyunVendorVectors checks the published Alibaba Cloud vectors.
func TestAliyunVendorVectors(t *testing.T) {
	tests := []struct {
		name, source                     string
		pk, dn, clientID, secret, method string
		mode                             int
		ms                               int64
		wantClientID, wantUser, wantPass string
	}{
		{
			name:   "pk/device",
			source: "Alibaba Cloud IoT Platform docs, MQTT-TCP connection example (docs/clouds.md, first aliyun vector)",
			pk:     "pk", dn: "device", clientID: "12345", secret: "secret", method: "hmacsha1", mode: 3, ms: 789,
			wantClientID: "12345|securemode=3,signmethod=hmacsha1,timestamp=789|",
			wantUser:     "device&pk",
			wantPass:     "FAFD82A3D602B37FB0FA8B7892F24A477F851A14",
		},
		{
			name:   "light1983432",
			source: "Alibaba Cloud IoT Platform docs, signature example for light1983432 (docs/clouds.md, second aliyun vector)",
			pk:     "a14Xib5kdYd", dn: "light1983432", clientID: "SN1928339", secret: "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq", method: "hmacsha1", mode: 2, ms: 1539421321846,
			wantClientID: "SN1928339|securemode=2,signmethod=hmacsha1,timestamp=1539421321846|",
			wantUser:     "light1983432&a14Xib5kdYd",
			wantPass:     "b2488041f64f425016b467ee1c94959ebd592ad1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustSign(t, cloud.Request{
				Cloud:  "aliyun",
				Params: map[string]any{"productKey": tt.pk, "deviceName": tt.dn, "clientId": tt.clientID, "signMethod": tt.method, "secureMode": tt.mode},
				Secret: tt.secret, Now: time.UnixMilli(tt.ms),
			})
			if c.ClientID != tt.wantClientID || c.Username != tt.wantUser {
				t.Errorf("clientId, username = %q, %q; want %q, %q (%s)", c.ClientID, c.Username, tt.wantClientID, tt.wantUser, tt.source)
			}
			// The platform accepts either hex case; credsign sends lowercase.
			if c.Password != strings.ToLower(tt.wantPass) {
				t.Errorf("password = %s, want %s (%s)", c.Password, strings.ToLower(tt.wantPass), tt.source)
			}
			if c.ExpiresAt != nil || c.ExpiryEnforced {
				t.Errorf("aliyun does not enforce expiry: got expiresAt %v, enforced %v", c.ExpiresAt, c.ExpiryEnforced)
			}
			if c.TLS != (tt.mode == 2) || c.Port != 1883 {
				t.Errorf("tls, port = %v, %d; want %v, 1883", c.TLS, c.Port, tt.mode == 2)
			}
		})
	}
}

// Example signs Alibaba Cloud's documented example device (docs/clouds.md, "aliyun").
func Example() {
	c, err := cloud.NewRegistry(aliyun.Backend{}).Sign(cloud.Request{Cloud: "aliyun", Params: map[string]any{"productKey": "a14Xib5kdYd", "deviceName": "light1983432", "clientId": "SN1928339"}, Secret: "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq", Now: time.UnixMilli(1528018257135)})
	fmt.Println(c.ClientID, c.Password, err)
	// Output: SN1928339|securemode=2,signmethod=hmacsha256,timestamp=1528018257135| 8109ca350bbcbe1a6a275bfdf312a5817c6ecbb9cc64a1848c35ade9ef48f5e1 <nil>
}

// mustSign signs req with this cloud alone.
func mustSign(t *testing.T, req cloud.Request) cloud.Credentials {
	return cloudtest.MustSign(t, reg, req)
}

var reg = cloud.NewRegistry(aliyun.Backend{})
