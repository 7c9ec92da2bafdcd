package cloudemu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/clouds"
	"github.com/credsign/credsign/internal/testing/testutil"
)

// TestVerifyOneNET: the published token (OneNET token algorithm doc, as in
// docs/clouds.md) is accepted until its et and refused after it.
func TestVerifyOneNET(t *testing.T) {
	const tok = "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D"
	devs := finder(map[string]string{"products/123123": "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw="})
	tests := []struct {
		name, clientID, username, password string
		now                                time.Time
		want                               error
	}{
		{"published, before et", "dev1", "123123", tok, time.Unix(1537255523, 0), nil},
		{"published, after et", "dev1", "123123", tok, time.Unix(1537255524, 0), ErrExpired},
		{"sign changed", "dev1", "123123", tok[:len(tok)-6] + "A%3D", time.Unix(1537255000, 0), ErrBadCredentials},
		{"et changed", "dev1", "123123", "version=2018-10-31&res=products%2F123123&et=1537255524&method=sha1&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D", time.Unix(1537255000, 0), ErrBadCredentials},
		{"res of another product", "dev1", "999", tok, time.Unix(1537255000, 0), ErrBadCredentials},
		{"unknown product", "dev1", "123124", "version=2018-10-31&res=products%2F123124&et=1537255523&method=sha1&sign=x", time.Unix(1537255000, 0), ErrUnknownDevice},
		{"method hmacsha1", "dev1", "123123", "version=2018-10-31&res=products%2F123123&et=1537255523&method=hmacsha1&sign=x", time.Unix(1537255000, 0), ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verifyOneNET(tt.clientID, tt.username, tt.password, tt.now, devs)
			wantErr(t, "verifyOneNET", err, tt.want)
		})
	}
}

// TestVerifyBaiduAndTuya: the published vectors of docs/clouds.md pass;
// a changed byte or a classic mistake does not.
func TestVerifyBaiduAndTuya(t *testing.T) {
	baidu := finder(map[string]string{"abcd123/mydevice": "ImSeCrEt0I1M2jkl"})
	// Vectors and window: Baidu IoT Core docs, "通过MQTT连接及收发消息"
	// (cloud.baidu.com/doc/IoTCore/s/Akck4811r): the timestamped example,
	// the example without a timestamp (0, or none in the username), and
	// "最大误差允许10min" (at most 10 minutes from the server's clock).
	at := time.Unix(1583826857, 0)
	for _, tt := range []struct {
		user, pass string
		now        time.Time
		want       error
	}{
		{"thingidp@abcd123|mydevice|1583826857|MD5", "7f0e63d2c6e122100edde19e34e7df5b", at, nil},
		{"thingidp@abcd123|mydevice|1583826857|MD5", "7f0e63d2c6e122100edde19e34e7df5b", at.Add(10 * time.Minute), nil},
		{"thingidp@abcd123|mydevice|1583826857|MD5", "7f0e63d2c6e122100edde19e34e7df5b", at.Add(-10 * time.Minute), nil},
		{"thingidp@abcd123|mydevice|1583826857|MD5", "7f0e63d2c6e122100edde19e34e7df5b", at.Add(10*time.Minute + time.Second), ErrExpired},
		{"thingidp@abcd123|mydevice|1583826857|MD5", "7f0e63d2c6e122100edde19e34e7df5b", at.Add(-10*time.Minute - time.Second), ErrExpired},
		{"thingidp@abcd123|mydevice|0|MD5", "22bc75231495220c7a2202fe15f7d286", at.Add(1000 * time.Hour), nil},
		{"thingidp@abcd123|mydevice", "22bc75231495220c7a2202fe15f7d286", at.Add(1000 * time.Hour), nil},
		{"thingidp@abcd123|mydevice|1583826858|MD5", "7f0e63d2c6e122100edde19e34e7df5b", at, ErrBadCredentials},
		{"thingidp@abcd123|mydevice|1583826857|md5", "7f0e63d2c6e122100edde19e34e7df5b", at, ErrBadCredentials},
		{"thingidp@abcd123|other|1583826857|MD5", "7f0e63d2c6e122100edde19e34e7df5b", at, ErrUnknownDevice},
		{"abcd123|mydevice|1583826857|MD5", "7f0e63d2c6e122100edde19e34e7df5b", at, ErrBadCredentials},
	} {
		if _, err := verifyBaidu(tt.user, tt.pass, tt.now, baidu); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("verifyBaidu(%q) at %s = %v, want %v", tt.user, tt.now.UTC().Format(time.RFC3339), err, tt.want)
		}
	}
	// tuyalegacy: vectors derived by running tuya/tuyaos-link-sdk-python's
	// own login_sign expression, md5(signkey).hexdigest()[8:8+8*2].
	legacy := finder(map[string]string{"d1": "0123456789abcdef"})
	for _, tt := range []struct {
		clientID, user, pass string
		want                 error
	}{
		{"d1", "d1", "61035123906e58e0", nil},
		{"d1", "d1", "0a8beee19351c1c8", ErrBadCredentials},
		{"d1", "d2", "61035123906e58e0", ErrBadCredentials},
		{"d2", "d2", "61035123906e58e0", ErrUnknownDevice},
	} {
		if _, err := verifyTuyaLegacy(tt.clientID, tt.user, tt.pass, legacy); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("verifyTuyaLegacy(%q, %q) = %v, want %v", tt.clientID, tt.user, err, tt.want)
		}
	}
	tuya := finder(map[string]string{"6c95875d0f5ba69607nzfl": "fb803786602df760"})
	const user = "6c95875d0f5ba69607nzfl|signMethod=hmacSha256,timestamp=1700000000,secureMode=1,accessType=1"
	const pass = "1560ae9a5d22067b47f6e98347c6e408fd9e9b63cd6c1f354fedbe452b0375db" // docs/clouds.md tuya vector
	for _, tt := range []struct {
		clientID, user, pass string
		want                 error
	}{
		{"tuyalink_6c95875d0f5ba69607nzfl", user, pass, nil},
		{"6c95875d0f5ba69607nzfl", user, pass, ErrBadCredentials},
		{"tuyalink_6c95875d0f5ba69607nzfl", "6c95875d0f5ba69607nzfl|signMethod=hmacSha256,timestamp=1700000001,secureMode=1,accessType=1", pass, ErrBadCredentials},
		{"tuyalink_other", "other|signMethod=hmacSha256,timestamp=1700000000,secureMode=1,accessType=1", pass, ErrUnknownDevice},
	} {
		if _, err := verifyTuya(tt.clientID, tt.user, tt.pass, tuya); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("verifyTuya(%q, %q) = %v, want %v", tt.clientID, tt.user, err, tt.want)
		}
	}
}

func rsaPEMs(t *testing.T) (private, public string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

// jwksServer serves a JWKS that a test can replace, as credsign's
// /.well-known/jwks.json does across a key rotation.
type jwksServer struct {
	mu   sync.Mutex
	body []byte
	hits int
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits++
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.body)
}

func (s *jwksServer) set(keys ...*cloud.TokenKey) error {
	b, err := cloud.JWKS(keys...)
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
	return err
}

// TestEmulatorMoreClouds: credentials from the recipes in cloud/ connect to the
// independent verifiers of every new cloud; a wrong secret or a token from
// an unpublished key is refused.
func TestEmulatorMoreClouds(t *testing.T) {
	tokenKey, err := cloud.GenerateTokenKey(cloud.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := cloud.GenerateTokenKey(cloud.AlgES256)
	jwks, _ := cloud.JWKS(tokenKey)
	awsPriv, awsPub := rsaPEMs(t)
	otherPriv, _ := rsaPEMs(t)
	const b64 = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="
	tests := []struct {
		cloud         string
		tls           bool
		emuParams     map[string]string
		emuSecret     string
		signParams    map[string]any
		secret, wrong string
		wrongKey      *cloud.TokenKey
	}{
		{OneNET, false, map[string]string{"productId": "P1", "deviceName": "lamp"}, b64,
			map[string]any{"productId": "P1", "deviceName": "lamp"}, b64, "YWJjZA==", nil},
		{OneNET, true, map[string]string{"productId": "P1", "keyScope": "product"}, b64,
			map[string]any{"productId": "P1", "deviceName": "lamp", "keyScope": "product", "signMethod": "md5", "tls": true}, b64, "YWJjZA==", nil},
		{Baidu, false, map[string]string{"iotCoreId": "core1", "deviceKey": "lamp"}, "s3cr3t",
			map[string]any{"iotCoreId": "core1", "deviceKey": "lamp", "signMethod": "SHA256"}, "s3cr3t", "s3cr3u", nil},
		{Baidu, true, map[string]string{"iotCoreId": "core1", "deviceKey": "lamp"}, "s3cr3t",
			map[string]any{"iotCoreId": "core1", "deviceKey": "lamp", "checkTimestamp": false, "tls": true}, "s3cr3t", "s3cr3u", nil},
		{TuyaLegacy, true, map[string]string{"deviceId": "tlamp"}, "seckey-0123",
			map[string]any{"deviceId": "tlamp"}, "seckey-0123", "seckey-0124", nil},
		{Tuya, true, map[string]string{"deviceId": "tlamp"}, "s3cr3t-tuya-0016",
			map[string]any{"deviceId": "tlamp"}, "s3cr3t-tuya-0016", "s3cr3u-tuya-0016", nil},
		{JWT, true, map[string]string{"deviceId": "lamp-7"}, "",
			map[string]any{"audience": "emqx"}, "", "", rogue},
		{AWS, true, map[string]string{"authorizerName": "credsign", "clientId": "lamp-7", "endpoint": "abc-ats.iot.eu-west-1.amazonaws.com"}, awsPub,
			map[string]any{"endpoint": "abc-ats.iot.eu-west-1.amazonaws.com", "authorizerName": "credsign"}, awsPriv, otherPriv, rogue},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/tls=%v", tt.cloud, tt.tls), func(t *testing.T) {
			e, err := Start(Options{Cloud: tt.cloud, TLS: tt.tls, JWKS: jwks, Issuer: "https://credsign.example", Audience: "emqx"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close() })
			if err := e.AddDevice(tt.emuParams, tt.emuSecret); err != nil {
				t.Fatal(err)
			}
			sign := func(secret string, key *cloud.TokenKey) cloud.Credentials {
				p := map[string]any{}
				for k, v := range tt.signParams {
					p[k] = v
				}
				switch tt.cloud {
				case JWT:
					p["host"] = e.Host()
				case AWS:
					// endpoint stays the AWS name (the token's aud); dial the emulator
				default:
					p["host"] = e.Host()
					p["port"] = e.Port()
				}
				c, err := clouds.Registry().Sign(cloud.Request{Cloud: tt.cloud, DeviceID: "lamp-7", Params: p, Secret: secret,
					TokenKey: key, Issuer: "https://credsign.example", Now: time.Now(), TTL: 10 * time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			if tt.wrong != "" {
				if _, err := dialCreds(t, e, sign(tt.wrong, tokenKey), nil); !refused(err) {
					t.Fatalf("wrong secret: %v, want refused", err)
				}
			}
			if tt.wrongKey != nil {
				if _, err := dialCreds(t, e, sign(tt.secret, tt.wrongKey), nil); !refused(err) {
					t.Fatalf("token from an unpublished key: %v, want refused", err)
				}
			}
			if _, err := dialCreds(t, e, sign(tt.secret, tokenKey), nil); err != nil {
				t.Fatalf("connect with credsign's credentials: %v (attempts %v)", err, e.Snapshot().Attempts)
			}
		})
	}
}

// TestBaiduWindowOnBroker: a Baidu triple signed with the issue time is
// refused by a broker whose clock is past the 10 minutes Baidu documents,
// and accepted within them; the never-checked timestamp 0 is accepted at
// any time.
func TestBaiduWindowOnBroker(t *testing.T) {
	issued := time.Now()
	for _, tt := range []struct {
		name   string
		offset time.Duration
		check  bool
		want   bool
	}{
		{"within 10 minutes", 9 * time.Minute, true, true},
		{"past 10 minutes", 10*time.Minute + 5*time.Second, true, false},
		{"timestamp 0, a day later", 24 * time.Hour, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Start(Options{Cloud: Baidu, Now: func() time.Time { return issued.Add(tt.offset) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close() })
			if err := e.AddDevice(map[string]string{"iotCoreId": "core1", "deviceKey": "lamp"}, "s3cr3t"); err != nil {
				t.Fatal(err)
			}
			c, err := clouds.Registry().Sign(cloud.Request{Cloud: Baidu, Params: map[string]any{"iotCoreId": "core1", "deviceKey": "lamp", "checkTimestamp": tt.check,
				"host": e.Host(), "port": e.Port()}, Secret: "s3cr3t", Now: issued})
			if err != nil {
				t.Fatal(err)
			}
			if tt.check && (c.ExpiresAt == nil || !c.ExpiresAt.Equal(time.Unix(issued.Unix(), 0).Add(10*time.Minute))) {
				t.Fatalf("expiresAt %v, want the timestamp + 10 minutes", c.ExpiresAt)
			}
			_, err = dialCreds(t, e, c, nil)
			if tt.want && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.want && !refused(err) {
				t.Fatalf("err = %v, want refused", err)
			}
		})
	}
}

// TestAWSEmulatorNeedsALPN: on AWS's port 443 a client that does not offer
// ALPN mqtt fails the TLS handshake.
func TestAWSEmulatorNeedsALPN(t *testing.T) {
	key, _ := cloud.GenerateTokenKey(cloud.AlgEdDSA)
	jwks, _ := cloud.JWKS(key)
	priv, pub := rsaPEMs(t)
	e, err := Start(Options{Cloud: AWS, TLS: true, JWKS: jwks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.AddDevice(map[string]string{"authorizerName": "a", "clientId": "d"}, pub); err != nil {
		t.Fatal(err)
	}
	c, err := clouds.Registry().Sign(cloud.Request{Cloud: AWS, Params: map[string]any{"endpoint": "e", "authorizerName": "a", "clientId": "d"},
		Secret: priv, TokenKey: key, Issuer: "i", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	c.ALPN = ""
	if _, err := dialCreds(t, e, c, nil); err == nil {
		t.Fatal("connected without ALPN mqtt")
	}
	if n := len(e.Snapshot().Attempts); n != 0 {
		t.Fatalf("%d CONNECTs reached the broker; the handshake must fail first", n)
	}
}

// TestJWTEmulatorExpiryAndRotation: the JWKS is fetched from a URL and
// fetched again when a token names a new kid (a rotation); a token signed
// independently with go-jose is accepted too; the session is dropped at exp
// and an expired token is refused.
func TestJWTEmulatorExpiryAndRotation(t *testing.T) {
	k1, _ := cloud.GenerateTokenKey(cloud.AlgRS256)
	k2, _ := cloud.GenerateTokenKey(cloud.AlgEdDSA)
	srv := &jwksServer{}
	if err := srv.set(k1); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	clock := &skewClock{}
	e, err := Start(Options{Cloud: JWT, JWKSURL: hs.URL, Now: clock.Now, ExpiryCheckInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.AddDevice(map[string]string{"deviceId": "lamp-7"}, ""); err != nil {
		t.Fatal(err)
	}
	sign := func(k *cloud.TokenKey, ttl time.Duration) cloud.Credentials {
		c, err := clouds.Registry().Sign(cloud.Request{Cloud: JWT, DeviceID: "lamp-7", Params: map[string]any{"host": e.Host()},
			TokenKey: k, Issuer: "iss", Now: clock.Now(), TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := dialCreds(t, e, sign(k1, time.Hour), nil); err != nil {
		t.Fatalf("k1: %v", err)
	}
	if _, err := dialCreds(t, e, sign(k2, time.Hour), nil); !refused(err) {
		t.Fatalf("k2 before it is published: %v, want refused", err)
	}
	if err := srv.set(k2, k1); err != nil { // rotated, with overlap
		t.Fatal(err)
	}
	if _, err := dialCreds(t, e, sign(k2, time.Hour), nil); err != nil {
		t.Fatalf("k2 after rotation: %v", err)
	}
	if _, err := dialCreds(t, e, sign(k1, time.Hour), nil); err != nil {
		t.Fatalf("k1 during the overlap: %v", err)
	}

	// A token made by go-jose alone, with its own ECDSA key published.
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jk := jose.JSONWebKey{Key: &ek.PublicKey, KeyID: "jose-1", Algorithm: "ES256", Use: "sig"}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ek, KeyID: "jose-1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	raw, err := josejwt.Signed(signer).Claims(josejwt.Claims{Subject: "lamp-7", Expiry: josejwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: josejwt.NewNumericDate(now)}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	joseOnly := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jk}}
	e2, err := Start(Options{Cloud: JWT, JWKS: testutil.MustJSON(t, joseOnly)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e2.Close() })
	_ = e2.AddDevice(map[string]string{"deviceId": "lamp-7"}, "")
	if _, err := dialCreds(t, e2, cloud.Credentials{ClientID: "lamp-7", Username: "lamp-7", Password: raw}, nil); err != nil {
		t.Fatalf("go-jose token: %v", err)
	}

	// Expiry: a 2 s token is dropped once the clock passes exp.
	lost := make(chan error, 1)
	if _, err := dialCreds(t, e, sign(k2, 2*time.Second), lost); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	select {
	case <-lost:
	case <-ctxT(t).Done():
		t.Fatal("the client was not dropped at exp")
	}
	expired := sign(k2, time.Second)
	clock.Advance(2 * time.Second)
	_, err = dialCreds(t, e, expired, nil)
	if !refused(err) {
		t.Fatalf("expired token: %v, want refused", err)
	}
	if at := e.Snapshot().Attempts; !errors.Is(at[len(at)-1].Err, ErrExpired) {
		t.Errorf("last attempt: %v, want ErrExpired", at[len(at)-1].Err)
	}
}

// TestOneNETDevicePublishesOnSysTopics: OneNET's device topics start with
// "$sys/"; the emulator acknowledges and records a PUBLISH there (mochi
// alone drops it as a "$SYS" topic) and still delivers "$sys/" commands.
func TestOneNETDevicePublishesOnSysTopics(t *testing.T) {
	const key = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="
	e, err := Start(Options{Cloud: OneNET})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.AddDevice(map[string]string{"productId": "P1", "deviceName": "lamp"}, key); err != nil {
		t.Fatal(err)
	}
	c, err := clouds.Registry().Sign(cloud.Request{Cloud: OneNET, Params: map[string]any{"productId": "P1", "deviceName": "lamp"}, Secret: key, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := dialCreds(t, e, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	if tok := cl.Subscribe(c.Topics.Commands, 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe to %s: %v", c.Topics.Commands, tok.Error())
	}
	if tok := cl.Publish(c.Topics.Telemetry, 1, false, "t"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish to %s: not acknowledged (%v)", c.Topics.Telemetry, tok.Error())
	}
	// The broker acknowledges a moment before the emulator records.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := e.Wait(ctx, func(s State) bool { return len(s.Messages) > 0 }); err != nil || len(s.Messages) != 1 || s.Messages[0].Topic != c.Topics.Telemetry {
		t.Fatalf("recorded %+v, want one message on %s", s.Messages, c.Topics.Telemetry)
	}
	cmd := strings.NewReplacer("#", "x", "+", "x").Replace(c.Topics.Commands)
	if err := e.Publish(cmd, []byte("on"), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case topic := <-got:
		if topic != cmd {
			t.Fatalf("command arrived on %s, want %s", topic, cmd)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no command on %s", cmd)
	}
}

// TestJWTBrokersAsDocumented: the jwt recipe against the brokers
// docs/jwt.md names, each as it reads and checks the token: EMQX with
// from = password and from = username (JWKS), and mosquitto-go-auth's
// JWT backend in local mode (token in the username, HS256 with the
// shared jwt_secret, sub looked up). go-auth refuses credsign's ES256
// tokens and a token sent in the password.
func TestJWTBrokersAsDocumented(t *testing.T) {
	key, _ := cloud.GenerateTokenKey(cloud.AlgES256)
	jwks, _ := cloud.JWKS(key)
	shared := "go-auth-jwt-secret-of-32-bytes!!"
	tests := []struct {
		name   string
		opts   Options
		params map[string]any
		secret string
		want   bool
	}{
		{"emqx from password", Options{JWKS: jwks}, map[string]any{}, "", true},
		{"emqx from username", Options{JWKS: jwks, JWTFrom: "username"}, map[string]any{"tokenIn": "username"}, "", true},
		{"emqx from username, token in the password", Options{JWKS: jwks, JWTFrom: "username"}, map[string]any{}, "", false},
		{"go-auth local, HS256 in the username", Options{GoAuthSecret: []byte(shared)}, map[string]any{"tokenIn": "username", "alg": "HS256"}, shared, true},
		{"go-auth local, HS256 in the password", Options{GoAuthSecret: []byte(shared)}, map[string]any{"alg": "HS256"}, shared, false},
		{"go-auth local, ES256 in the username", Options{GoAuthSecret: []byte(shared)}, map[string]any{"tokenIn": "username"}, "", false},
		{"go-auth local, another secret", Options{GoAuthSecret: []byte(shared)}, map[string]any{"tokenIn": "username", "alg": "HS256"}, shared + "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Cloud = JWT
			e, err := Start(opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close() })
			if err := e.AddDevice(map[string]string{"deviceId": "lamp-7"}, ""); err != nil {
				t.Fatal(err)
			}
			p := map[string]any{"host": e.Host(), "port": e.Port(), "tls": false}
			for k, v := range tt.params {
				p[k] = v
			}
			c, err := clouds.Registry().Sign(cloud.Request{Cloud: JWT, DeviceID: "lamp-7", Params: p, Secret: tt.secret, TokenKey: key,
				Issuer: "https://credsign.example", Now: time.Now(), TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			_, err = dialCreds(t, e, c, nil)
			if tt.want && err != nil {
				t.Fatalf("refused: %v (attempts %v)", err, e.Snapshot().Attempts)
			}
			if !tt.want && !refused(err) {
				t.Fatalf("err = %v, want refused", err)
			}
		})
	}
}
