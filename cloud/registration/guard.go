package registration

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Where registration calls may go. A group's registration names the host
// its calls go to, and the calls carry the group's credentials (a DPS SAS,
// Tencent's signature headers, Alibaba's sign), so a host chosen by whoever
// may write groups must not turn credsign into a way of reaching the
// server's own network, nor a way of sending those credentials elsewhere:
//
//   - the host must be one of its kind's documented domains (Kind.Hosts),
//     or one the operator added (Client.AllowHosts);
//   - every address dialled must be public (AddressReason), checked on the
//     connection's own address, after name resolution (so a name that
//     resolves, or is rebound, to 127.0.0.1 is refused as 127.0.0.1 is),
//     unless the operator allowed private addresses (Client.AllowPrivate);
//   - redirects are never followed: a 3xx answer is a failure, and the
//     credentials are not sent to where it points;
//   - proxies from the environment (HTTPS_PROXY) are not used, so that the
//     address checked is the cloud's.

// hostPatternRE is the form of an allowed-host pattern: a host name, a
// wildcard "*." and a domain, or an IP address.
var hostPatternRE = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*$`)

// CheckHostPattern says what is wrong with an allowed-host pattern, nil
// when it is a host name, "*." and a domain, or an IP address.
func CheckHostPattern(p string) error {
	if _, err := netip.ParseAddr(p); err == nil {
		return nil
	}
	if !hostPatternRE.MatchString(strings.ToLower(p)) || p == "*." {
		return fmt.Errorf("allowed host %q: want a host name, *.domain or an IP address", p)
	}
	if strings.HasPrefix(p, "*.") && !strings.Contains(p[2:], ".") {
		return fmt.Errorf("allowed host %q: a wildcard needs a domain of at least two labels", p)
	}
	return nil
}

// matchHost reports whether host (a name or an IP literal, without port)
// matches pattern.
func matchHost(pattern, host string) bool {
	pattern = strings.ToLower(pattern)
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if pa, err := netip.ParseAddr(pattern); err == nil {
		ha, err := netip.ParseAddr(host)
		return err == nil && ha.WithZone("") == pa.WithZone("")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return false // a name pattern never matches an address
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(host) > len(suffix) && strings.HasSuffix(host, suffix)
	}
	return host == pattern
}

// checkAllowed says why the host of a kind's call is not allowed, nil when
// it is.
func (c *Client) checkAllowed(kind, hostport string) error {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if a, err := netip.ParseAddr(host); err == nil && !c.AllowPrivate {
		if why := AddressReason(a); why != "" {
			return fmt.Errorf("%s is %s, not a public address (credsign serve --registration-allow-private allows it)", host, why)
		}
	}
	hosts := c.Kinds[kind].Hosts
	for _, p := range append(hosts[:len(hosts):len(hosts)], c.AllowHosts...) {
		if matchHost(p, host) {
			return nil
		}
	}
	return fmt.Errorf("%s is not a documented %s host (%s); credsign serve --registration-allow-host adds one",
		host, kind, strings.Join(hosts, ", "))
}

// AddressError is the failure of a dial to an address that is not public.
type AddressError struct {
	// Addr is the address dialled.
	Addr netip.Addr
	// Reason names its kind ("loopback", "private", ...).
	Reason string
}

// Error implements error.
func (e *AddressError) Error() string {
	return fmt.Sprintf("refused to connect to %s: %s, not a public address (credsign serve --registration-allow-private allows it)", e.Addr, e.Reason)
}

// nonPublic are the IPv4 and IPv6 ranges that are not globally reachable
// (IANA IPv4 and IPv6 Special-Purpose Address Registries), with what
// AddressReason calls them. An address is only ever in a range of its own
// family.
var nonPublic = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a \"this network\" address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a 6to4 relay anycast address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved or broadcast address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique local (private) address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("2001::/23"), "an IETF protocol assignment (Teredo, ORCHID, ...)"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
}

// IPv6 prefixes that carry an IPv4 address, and the one of global unicast.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	global6   = netip.MustParsePrefix("2000::/3")
)

// AddressReason says why a is not a public address ("a loopback address",
// "a private address", ...), "" when it is public. IPv4-mapped IPv6
// addresses are judged as their IPv4 address, NAT64 (64:ff9b::/96) and 6to4
// (2002::/16) addresses by the IPv4 address they carry; outside those, an
// IPv6 address is public only in 2000::/3.
func AddressReason(a netip.Addr) string {
	a = a.WithZone("").Unmap()
	if !a.IsValid() {
		return "not an address"
	}
	for _, r := range nonPublic {
		if r.prefix.Contains(a) {
			return r.reason
		}
	}
	if a.Is4() {
		return ""
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		if why := AddressReason(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
			return "a NAT64 address of " + why
		}
		return ""
	case sixToFour.Contains(a):
		if why := AddressReason(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
			return "a 6to4 address of " + why
		}
		return ""
	case !global6.Contains(a):
		return "a reserved IPv6 address"
	}
	return ""
}

// control refuses, unless c.AllowPrivate, a connection to an address that
// is not public. It runs on the address the socket is about to connect to,
// after name resolution, for every address tried.
func (c *Client) control(_, address string, _ syscall.RawConn) error {
	if c.AllowPrivate {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("refused to connect to %q: not an IP address", address)
	}
	if why := AddressReason(a); why != "" {
		return &AddressError{Addr: a.WithZone("").Unmap(), Reason: why}
	}
	return nil
}

// RedirectError is a 3xx answer: redirects are never followed.
type RedirectError struct {
	// Status is the answer's HTTP status.
	Status int
	// Host is the host the Location header names ("" without one).
	Host string
}

// Error implements error.
func (e *RedirectError) Error() string {
	if e.Host == "" {
		return fmt.Sprintf("answered HTTP %d, a redirect; redirects are not followed", e.Status)
	}
	return fmt.Sprintf("answered HTTP %d, a redirect to %s; redirects are not followed", e.Status, e.Host)
}

// refuseRedirect is the CheckRedirect of the registration client: the
// redirect's request is never sent.
func refuseRedirect(req *http.Request, _ []*http.Request) error {
	status := 0
	if req.Response != nil {
		status = req.Response.StatusCode
	}
	return &RedirectError{Status: status, Host: req.URL.Host}
}

// redirectOf returns the RedirectError of a 3xx answer that the client did
// not follow (304, 300, one without Location).
func redirectOf(resp *http.Response) *RedirectError {
	e := &RedirectError{Status: resp.StatusCode}
	if loc, err := resp.Location(); err == nil {
		e.Host = loc.Host
	}
	return e
}

// build returns the HTTP client of c: c.HTTP (or http.DefaultClient) with
// a copy of its transport whose dialer runs control, no proxy, and
// refuseRedirect.
func (c *Client) build() (*http.Client, error) {
	base := c.HTTP
	if base == nil {
		base = http.DefaultClient
	}
	var t *http.Transport
	switch rt := base.Transport.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = rt.Clone()
	default:
		return nil, fmt.Errorf("%w: Client.HTTP's Transport must be an *http.Transport (the address check is put in its dialer)", ErrInvalid)
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: c.control}
	t.DialContext = d.DialContext
	t.DialTLSContext = nil
	t.Proxy = nil
	return &http.Client{Transport: t, Timeout: base.Timeout, CheckRedirect: refuseRedirect}, nil
}

// classify turns a transport failure that waiting will not clear into the
// package's error: a refused address is ErrInvalid (nothing was sent; the
// group, or the operator's flags, need fixing), a redirect ErrRefused. It
// returns nil for other failures.
func classify(err error) error {
	var ae *AddressError
	var re *RedirectError
	switch {
	case errors.As(err, &ae):
		return fmt.Errorf("%w: %w", ErrInvalid, ae)
	case errors.As(err, &re):
		return fmt.Errorf("%w: %w", ErrRefused, re)
	}
	return nil
}
