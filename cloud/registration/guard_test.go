package registration

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAddressReason(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr string
		want string // a word of the reason; "" public
	}{
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"169.254.169.254", "link-local"}, // cloud metadata
		{"169.254.0.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf:ffff::1", "link-local"},
		{"10.0.0.1", "private"},
		{"10.255.255.255", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"100.64.0.1", "carrier-grade"},
		{"100.127.255.255", "carrier-grade"},
		{"fc00::1", "unique local"},
		{"fd12:3456::1", "unique local"},
		{"0.0.0.0", "this network"},
		{"0.1.2.3", "this network"},
		{"::", "unspecified"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.1.2.3", "private"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::ffff:0.0.0.0", "this network"},
		{"::127.0.0.1", "reserved"}, // IPv4-compatible (deprecated)
		{"64:ff9b::7f00:1", "NAT64 address of a loopback"},
		{"64:ff9b::a9fe:a9fe", "NAT64 address of a link-local"},
		{"64:ff9b:1::1", "local-use NAT64"},
		{"2002:7f00:1::1", "6to4 address of a loopback"},
		{"2002:c0a8:101::1", "6to4 address of a private"},
		{"2001::1", "IETF"}, // Teredo
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"192.0.0.8", "IETF"},
		{"192.0.2.1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"192.88.99.1", "6to4 relay"},
		{"100::1", "reserved"},
		{"fbff::1", "reserved"},
		// Public: the neighbours of every range, and real endpoints' kind.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"9.255.255.255", ""},
		{"11.0.0.0", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"126.255.255.255", ""},
		{"128.0.0.0", ""},
		{"169.253.255.255", ""},
		{"169.255.0.0", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"192.167.255.255", ""},
		{"192.169.0.0", ""},
		{"223.255.255.255", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},
		{"2002:808:808::1", ""},
		{"2606:4700:4700::1111", ""},
		{"2400:cb00::1", ""},
	}
	for _, tc := range cases {
		a := netip.MustParseAddr(tc.addr)
		got := AddressReason(a)
		if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
			t.Errorf("AddressReason(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestHostPatterns(t *testing.T) {
	t.Parallel()
	match := []struct {
		pattern, host string
		want          bool
	}{
		{"*.azure-devices-provisioning.net", "global.azure-devices-provisioning.net", true},
		{"*.azure-devices-provisioning.net", "GLOBAL.Azure-Devices-Provisioning.NET.", true},
		{"*.azure-devices-provisioning.net", "azure-devices-provisioning.net", false},
		{"*.azure-devices-provisioning.net", "evilazure-devices-provisioning.net", false},
		{"*.azure-devices-provisioning.net", "global.azure-devices-provisioning.net.evil.example", false},
		{"*.aliyuncs.com", "iot-auth.cn-shanghai.aliyuncs.com", true},
		{"*.tencentdevices.com", "ap-guangzhou.gateway.tencentdevices.com", true},
		{"dps.internal.example", "dps.internal.example", true},
		{"dps.internal.example", "x.dps.internal.example", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"::1", "[::1]", false}, // callers strip brackets first
		{"::1", "0:0::1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"*.example.com", "10.0.0.1", false},
	}
	for _, tc := range match {
		if got := matchHost(tc.pattern, tc.host); got != tc.want {
			t.Errorf("matchHost(%q, %q) = %t, want %t", tc.pattern, tc.host, got, tc.want)
		}
	}
	for p, ok := range map[string]bool{
		"dps.example.com": true, "*.example.com": true, "127.0.0.1": true, "fd00::1": true, "localhost": true,
		"*": false, "*.com": false, "*.": false, "a.*.example.com": false, "https://x": false, "x:443": false, "": false, "a..b": false,
	} {
		if err := CheckHostPattern(p); (err == nil) != ok {
			t.Errorf("CheckHostPattern(%q) = %v, want ok %t", p, err, ok)
		}
	}
}

// Every address dialled is checked, whatever name led to it: the client
// built for the registrations refuses to connect to each kind of address
// that is not public (the check runs before connect, so nothing is sent and
// no such network needs to exist), and allows it with AllowPrivate.
func TestDialRefusesNonPublic(t *testing.T) {
	t.Parallel()
	hc, err := (&Client{}).httpClient()
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "127.1.2.3", "[::1]", "169.254.169.254", "[fe80::1%25lo]", "10.0.0.1", "172.16.5.4",
		"192.168.0.1", "100.64.0.1", "[fc00::1]", "[fd00::1]", "0.0.0.0", "[::ffff:127.0.0.1]", "[::ffff:192.168.0.1]", "[::]", "[64:ff9b::7f00:1]"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+":443/", nil)
		_, err := hc.Do(req)
		cancel()
		var ae *AddressError
		if !errors.As(err, &ae) {
			t.Errorf("GET https://%s: %v, want an AddressError", host, err)
		}
	}
}

func FuzzAddressReason(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add([]byte{8, 8, 8, 8})
	f.Add([]byte{169, 254, 169, 254})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 4 {
			return
		}
		v4 := netip.AddrFrom4([4]byte(b))
		mapped := netip.AddrFrom16(v4.As16())
		if AddressReason(v4) != AddressReason(mapped) {
			t.Fatalf("%s: %q, mapped %s: %q", v4, AddressReason(v4), mapped, AddressReason(mapped))
		}
		if v4.IsLoopback() || v4.IsPrivate() || v4.IsLinkLocalUnicast() || v4.IsUnspecified() || v4.IsMulticast() {
			if AddressReason(v4) == "" {
				t.Fatalf("%s called public", v4)
			}
		}
	})
}
