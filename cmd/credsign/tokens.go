package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/credsign/credsign/internal/apiclient"
)

// tokenTable prints a minted token for people: its ID, role and, once,
// its text (this command is the one issuing it).
func tokenTable(w io.Writer, t *apiclient.TokenCreated) {
	fmt.Fprintf(w, "id\t%s\nrole\t%s\n", oneLine(t.Id), oneLine(string(t.Role)))
	if t.DeviceId != nil {
		fmt.Fprintf(w, "device\t%s\n", oneLine(*t.DeviceId))
	}
	fmt.Fprintf(w, "token\t%s\n", oneLine(t.Token))
}

func tokensMint(ctx context.Context, c *clientRun) int {
	var device, name string
	var ttl time.Duration
	ok, code := c.parse("", func(fs *flag.FlagSet) {
		fs.StringVar(&device, "device", "", "mint a device token bound to device `ID` (admin or provisioner); without it, a provisioner token (admin)")
		fs.StringVar(&name, "name", "", "the token's `name`, shown when tokens are listed")
		fs.DurationVar(&ttl, "ttl", 0, "the token's lifetime (e.g. 2160h); without it the token never expires")
	})
	if !ok {
		return code
	}
	var namePtr *string
	if name != "" {
		namePtr = &name
	}
	var ttlPtr *int64
	if ttl != 0 {
		secs := int64(ttl / time.Second)
		ttlPtr = &secs
	}
	if device != "" {
		res, err := c.client.CreateDeviceTokenWithResponse(ctx, device, apiclient.DeviceTokenRequest{Name: namePtr, TtlSeconds: ttlPtr})
		if err != nil {
			return c.transport(err)
		}
		return c.done(res.StatusCode(), res.Body, func(w io.Writer) { tokenTable(w, res.JSON201) })
	}
	res, err := c.client.CreateTokenWithResponse(ctx, apiclient.TokenRequest{Role: apiclient.TokenRequestRoleProvisioner, Name: namePtr, TtlSeconds: ttlPtr})
	if err != nil {
		return c.transport(err)
	}
	return c.done(res.StatusCode(), res.Body, func(w io.Writer) { tokenTable(w, res.JSON201) })
}

func tokensRevoke(ctx context.Context, c *clientRun) int {
	var device string
	ok, code := c.parse("TOKEN-ID", func(fs *flag.FlagSet) {
		fs.StringVar(&device, "device", "", "revoke a token of device `ID` (admin or provisioner; 404 if it is not that device's); without it, any token (admin)")
	})
	if !ok {
		return code
	}
	id := c.pos[0]
	if device != "" {
		res, err := c.client.RevokeDeviceTokenWithResponse(ctx, device, id)
		if err != nil {
			return c.transport(err)
		}
		return c.deleted(res.StatusCode(), res.Body, "token "+id+" of device "+device+" revoked")
	}
	res, err := c.client.RevokeTokenWithResponse(ctx, id)
	if err != nil {
		return c.transport(err)
	}
	return c.deleted(res.StatusCode(), res.Body, "token "+id+" revoked")
}

// enrolmentTable prints an enrolment token (with its text only when it
// was just minted).
func enrolmentTable(w io.Writer, t apiclient.EnrolmentToken, token string) {
	fmt.Fprintf(w, "id\t%s\ngroup\t%s\nuses\t%d of %d\nfailures\t%d\n", oneLine(t.Id), oneLine(t.Group), t.Uses, t.MaxUses, t.Failures)
	fmt.Fprintf(w, "idPattern\t%s\nexpires\t%s\ncreated\t%s\n", orDash(t.IdPattern), t.ExpiresAt.UTC().Format(time.RFC3339), t.CreatedAt.UTC().Format(time.RFC3339))
	if t.RevokedAt != nil {
		fmt.Fprintf(w, "revoked\t%s\n", t.RevokedAt.UTC().Format(time.RFC3339))
	}
	if token != "" {
		fmt.Fprintf(w, "token\t%s\n", oneLine(token))
	}
}

func enrolmentMint(ctx context.Context, c *clientRun) int {
	var maxUses int64
	var ttl time.Duration
	var expires, pattern string
	ok, code := c.parse("GROUP", func(fs *flag.FlagSet) {
		fs.Int64Var(&maxUses, "max-uses", 0, "how many devices the token may enrol (required)")
		fs.DurationVar(&ttl, "ttl", 0, "lifetime from now, such as 168h (this or --expires-at)")
		fs.StringVar(&expires, "expires-at", "", "when it stops enrolling, RFC 3339 (this or --ttl)")
		fs.StringVar(&pattern, "id-pattern", "", "an RE2 expression every device ID it enrols must match as a whole")
	})
	if !ok {
		return code
	}
	req := apiclient.EnrolmentTokenRequest{MaxUses: maxUses}
	switch {
	case maxUses < 1:
		return c.usage("--max-uses N is required: how many devices the token may enrol")
	case (ttl == 0) == (expires == ""):
		return c.usage("give one of --ttl and --expires-at")
	case ttl < 0 || ttl%time.Second != 0:
		return c.usage("--ttl %s: want a positive whole number of seconds", ttl)
	case ttl > 0:
		s := int64(ttl / time.Second)
		req.TtlSeconds = &s
	default:
		at, err := time.Parse(time.RFC3339, expires)
		if err != nil {
			return c.usage("--expires-at %q: want RFC 3339, such as 2027-01-31T00:00:00Z", expires)
		}
		req.ExpiresAt = &at
	}
	if pattern != "" {
		req.IdPattern = &pattern
	}
	res, err := c.client.CreateEnrolmentTokenWithResponse(ctx, c.pos[0], req)
	if err != nil {
		return c.transport(err)
	}
	return c.done(res.StatusCode(), res.Body, func(w io.Writer) {
		t := res.JSON201
		enrolmentTable(w, apiclient.EnrolmentToken{Id: t.Id, Group: t.Group, MaxUses: t.MaxUses, Uses: t.Uses, Failures: t.Failures,
			ExpiresAt: t.ExpiresAt, IdPattern: t.IdPattern, CreatedAt: t.CreatedAt, RevokedAt: t.RevokedAt}, t.Token)
	})
}

func enrolmentGet(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("GROUP TOKEN-ID", nil); !ok {
		return code
	}
	res, err := c.client.GetEnrolmentTokenWithResponse(ctx, c.pos[0], c.pos[1])
	if err != nil {
		return c.transport(err)
	}
	return c.done(res.StatusCode(), res.Body, func(w io.Writer) { enrolmentTable(w, *res.JSON200, "") })
}

func enrolmentRevoke(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("GROUP TOKEN-ID", nil); !ok {
		return code
	}
	res, err := c.client.RevokeEnrolmentTokenWithResponse(ctx, c.pos[0], c.pos[1])
	if err != nil {
		return c.transport(err)
	}
	return c.deleted(res.StatusCode(), res.Body, "enrolment token "+c.pos[1]+" of group "+c.pos[0]+" revoked")
}

func keysRotate(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("", nil); !ok {
		return code
	}
	res, err := c.client.RotateJWTKeyWithResponse(ctx)
	if err != nil {
		return c.transport(err)
	}
	return c.done(res.StatusCode(), res.Body, func(w io.Writer) { fmt.Fprintf(w, "kid\t%s\n", oneLine(res.JSON200.Kid)) })
}

func keysJWKS(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("", nil); !ok {
		return code
	}
	res, err := c.client.GetJWKSWithResponse(ctx)
	if err != nil {
		return c.transport(err)
	}
	return c.done(res.StatusCode(), res.Body, func(w io.Writer) {
		fmt.Fprintln(w, "KID\tKTY\tALG\tUSE")
		for _, k := range res.JSON200.Keys {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", oneLine(k.Kid), oneLine(k.Kty), orDash(k.Alg), orDash(k.Use))
		}
	})
}
