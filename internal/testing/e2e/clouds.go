package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/cloudemu"
)

// Device is a device as credsign holds it, without the broker's address
// (which points at its emulator), and what its emulator knows of it.
type Device struct {
	ID     string
	Cloud  string
	Params map[string]any
	// Secret is what credsign holds (none for jwt).
	Secret string
	// TLS makes the emulator speak TLS (aws and tuya always do).
	TLS bool
	// BrokerSecret is what the emulator checks with when it is not Secret:
	// for aws, the authorizer's token-signing public key.
	BrokerSecret string
}

// Emulate starts an emulator of d's cloud that knows d, jwt and aws
// trusting svc's JWKS (fetched from its URL, again when a kid is new), and
// returns it with the params that register d in credsign against it. AWS
// listens on port 443 of a random loopback address, as AWS IoT Core takes
// custom authentication with ALPN mqtt there. now is the emulator's clock
// (nil: real time). The emulator stops when the test ends.
func Emulate(t testing.TB, svc *Service, d Device, now func() time.Time) (*cloudemu.Emulator, map[string]any) {
	t.Helper()
	o := cloudemu.Options{Cloud: d.Cloud, TLS: d.TLS, Now: now, ExpiryCheckInterval: 20 * time.Millisecond}
	switch d.Cloud {
	case cloudemu.JWT:
		o.JWKSURL, o.Issuer = svc.JWKSURL(), svc.URL()
	case cloudemu.AWS:
		o.JWKSURL, o.Issuer, o.TLS = svc.JWKSURL(), svc.URL(), true
		o.Addr = loopback443(t)
		host, _, _ := net.SplitHostPort(o.Addr)
		o.Hosts = []string{host}
	case cloudemu.Tuya:
		o.TLS = true
	}
	e, err := cloudemu.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	emu := map[string]string{}
	params := map[string]any{}
	for k, v := range d.Params {
		emu[k], params[k] = fmt.Sprint(v), v
	}
	switch d.Cloud {
	case cloudemu.AWS:
		// The endpoint is the broker's host and the token's audience; the
		// port is AWS's default, 443.
		params["endpoint"], emu["endpoint"] = e.Host(), e.Host()
		if emu["clientId"] == "" {
			emu["clientId"] = d.ID
		}
	default:
		params["host"], params["port"] = e.Host(), e.Port()
	}
	switch d.Cloud {
	case cloudemu.Aliyun:
		params["secureMode"] = map[bool]int{true: 2, false: 3}[d.TLS]
	case cloudemu.Huawei, cloudemu.OneNET, cloudemu.Baidu, cloudemu.JWT:
		params["tls"] = d.TLS
	}
	if d.Cloud == cloudemu.JWT && emu["deviceId"] == "" {
		emu["deviceId"] = d.ID // the token's subject
	}
	secret := d.BrokerSecret
	if secret == "" {
		secret = d.Secret
	}
	if err := e.AddDevice(emu, secret); err != nil {
		t.Fatal(err)
	}
	return e, params
}

// loopback443 returns port 443 of a free random loopback address
// (127.x.y.z), so that tests running at once do not collide on it. Ports
// below 1024 need root or net.ipv4.ip_unprivileged_port_start; without
// them the test is skipped, saying so.
func loopback443(t testing.TB) string {
	t.Helper()
	for range 20 {
		n, err := rand.Int(rand.Reader, big.NewInt(1<<24-2))
		if err != nil {
			t.Fatal(err)
		}
		v := n.Int64() + 1
		addr := fmt.Sprintf("127.%d.%d.%d:443", v>>16, v>>8&0xff, v&0xff)
		ln, err := net.Listen("tcp", addr)
		if errors.Is(err, syscall.EACCES) {
			t.Skipf("cannot listen on port 443 (%v): run as root or lower net.ipv4.ip_unprivileged_port_start", err)
		}
		if err == nil {
			_ = ln.Close()
			return addr
		}
	}
	t.Fatal("no free loopback address for port 443")
	return ""
}

// RSAKeyPEMs returns a new 2048-bit RSA key as PKCS #8 private and PKIX
// public PEM: an AWS custom authorizer's token-signing key pair.
func RSAKeyPEMs(t testing.TB) (private, public string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}
