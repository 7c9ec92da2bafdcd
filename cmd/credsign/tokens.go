package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	var groups []string
	labels := map[string]string{}
	ok, code := c.parse("", func(fs *flag.FlagSet) {
		fs.StringVar(&device, "device", "", "mint a device token bound to device `ID` (admin or provisioner); without it, a provisioner token (admin)")
		fs.StringVar(&name, "name", "", "the token's `name`, shown when tokens are listed")
		fs.DurationVar(&ttl, "ttl", 0, "the token's lifetime (e.g. 2160h); without it the token never expires")
		fs.Func("scope-group", "a provisioner token limited to devices of `GROUP` and that group (repeat: any of them)", func(s string) error {
			groups = append(groups, s)
			return nil
		})
		fs.Func("scope-label", "a provisioner token limited to devices and groups with this label, `k=v` (repeat: every one must match)", func(s string) error {
			k, v, found := strings.Cut(s, "=")
			if !found || k == "" {
				return fmt.Errorf("want key=value, not %q", s)
			}
			if old, dup := labels[k]; dup && old != v {
				return fmt.Errorf("label %q given twice (%q and %q): a device has one value", k, old, v)
			}
			labels[k] = v
			return nil
		})
	})
	if !ok {
		return code
	}
	var scope *apiclient.TokenScope
	if len(groups) > 0 || len(labels) > 0 {
		if device != "" {
			return c.usage("--scope-group and --scope-label are for provisioner tokens, not with --device")
		}
		scope = &apiclient.TokenScope{}
		if len(groups) > 0 {
			scope.Groups = &groups
		}
		if len(labels) > 0 {
			scope.Labels = &labels
		}
	}
	var ttlPtr *int64
	if ttl != 0 {
		secs := int64(ttl / time.Second)
		ttlPtr = &secs
	}
	if device != "" {
		res, err := c.client.CreateDeviceTokenWithResponse(ctx, device, apiclient.DeviceTokenRequest{Name: optional(name), TtlSeconds: ttlPtr})
		return c.done(res, err, func(w io.Writer) { tokenTable(w, res.JSON201) })
	}
	res, err := c.client.CreateTokenWithResponse(ctx, apiclient.TokenRequest{Role: apiclient.TokenRequestRoleProvisioner, Name: optional(name), TtlSeconds: ttlPtr, Scope: scope})
	return c.done(res, err, func(w io.Writer) { tokenTable(w, res.JSON201) })
}

// tokenRow prints one listed token for people (a listed token has no
// text: the server keeps only its hash).
func tokenRow(w io.Writer, t apiclient.Token) {
	expires := "never"
	if t.ExpiresAt != nil {
		expires = t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(t.Id), orDash(t.Name), oneLine(string(t.Role)), orDash(t.DeviceId),
		oneLine(string(t.State)), t.CreatedAt.UTC().Format(time.RFC3339), expires, scopeText(t.Scope))
}

// scopeText is a token's scope in one cell: groups=a|b and the labels.
func scopeText(s *apiclient.TokenScope) string {
	if s == nil {
		return "-"
	}
	var parts []string
	if s.Groups != nil {
		parts = append(parts, "groups="+strings.Join(*s.Groups, "|"))
	}
	if s.Labels != nil {
		parts = append(parts, labelsText((*apiclient.Labels)(s.Labels)))
	}
	return oneLine(strings.Join(parts, ","))
}

func tokensList(ctx context.Context, c *clientRun) int {
	var p pageFlags
	var device string
	ok, code := c.parse("", func(fs *flag.FlagSet) {
		p.register(fs)
		fs.StringVar(&device, "device", "", "list the tokens of device `ID` (admin or provisioner); without it, the provisioner tokens (admin)")
	})
	if !ok {
		return code
	}
	return list(ctx, c, p, "tokens", "ID\tNAME\tROLE\tDEVICE\tSTATE\tCREATED\tEXPIRES\tSCOPE", func(ctx context.Context, after *string, limit *int) (*http.Response, error) {
		if device != "" {
			return c.client.ListDeviceTokens(ctx, device, &apiclient.ListDeviceTokensParams{After: after, Limit: limit})
		}
		return c.client.ListTokens(ctx, &apiclient.ListTokensParams{After: after, Limit: limit})
	}, tokenRow)
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
		return c.deleted(res, err, "token "+id+" of device "+device+" revoked")
	}
	res, err := c.client.RevokeTokenWithResponse(ctx, id)
	return c.deleted(res, err, "token "+id+" revoked")
}

// enrolmentTable prints an enrolment token (with its text only when it
// was just minted).
func enrolmentTable(w io.Writer, t apiclient.EnrolmentToken, token string) {
	fmt.Fprintf(w, "id\t%s\nname\t%s\ngroup\t%s\nuses\t%d of %d\nfailures\t%d\n", oneLine(t.Id), orDash(t.Name), oneLine(t.Group), t.Uses, t.MaxUses, t.Failures)
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
	var expires, pattern, name string
	ok, code := c.parse("GROUP", func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "the token's `name`, shown when enrolment tokens are listed")
		fs.Int64Var(&maxUses, "max-uses", 0, "how many devices the token may enrol (required)")
		fs.DurationVar(&ttl, "ttl", 0, "lifetime from now, such as 168h (this or --expires-at)")
		fs.StringVar(&expires, "expires-at", "", "when it stops enrolling, RFC 3339 (this or --ttl)")
		fs.StringVar(&pattern, "id-pattern", "", "an RE2 expression every device ID it enrols must match as a whole")
	})
	if !ok {
		return code
	}
	req := apiclient.EnrolmentTokenRequest{MaxUses: maxUses, IdPattern: optional(pattern), Name: optional(name)}
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
	res, err := c.client.CreateEnrolmentTokenWithResponse(ctx, c.pos[0], req)
	return c.done(res, err, func(w io.Writer) {
		t := res.JSON201
		enrolmentTable(w, apiclient.EnrolmentToken{Id: t.Id, Group: t.Group, MaxUses: t.MaxUses, Uses: t.Uses, Failures: t.Failures,
			ExpiresAt: t.ExpiresAt, IdPattern: t.IdPattern, CreatedAt: t.CreatedAt, RevokedAt: t.RevokedAt, Name: t.Name}, t.Token)
	})
}

func enrolmentList(ctx context.Context, c *clientRun) int {
	var p pageFlags
	if ok, code := c.parse("GROUP", p.register); !ok {
		return code
	}
	return list(ctx, c, p, "enrolmentTokens", "ID\tNAME\tUSES\tFAILURES\tID-PATTERN\tEXPIRES\tREVOKED", func(ctx context.Context, after *string, limit *int) (*http.Response, error) {
		return c.client.ListEnrolmentTokens(ctx, c.pos[0], &apiclient.ListEnrolmentTokensParams{After: after, Limit: limit})
	}, func(w io.Writer, t apiclient.EnrolmentToken) {
		revoked := "-"
		if t.RevokedAt != nil {
			revoked = t.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%d of %d\t%d\t%s\t%s\t%s\n", oneLine(t.Id), orDash(t.Name), t.Uses, t.MaxUses, t.Failures, orDash(t.IdPattern), t.ExpiresAt.UTC().Format(time.RFC3339), revoked)
	})
}

func enrolmentGet(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("GROUP TOKEN-ID", nil); !ok {
		return code
	}
	res, err := c.client.GetEnrolmentTokenWithResponse(ctx, c.pos[0], c.pos[1])
	return c.done(res, err, func(w io.Writer) { enrolmentTable(w, *res.JSON200, "") })
}

func enrolmentRevoke(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("GROUP TOKEN-ID", nil); !ok {
		return code
	}
	res, err := c.client.RevokeEnrolmentTokenWithResponse(ctx, c.pos[0], c.pos[1])
	return c.deleted(res, err, "enrolment token "+c.pos[1]+" of group "+c.pos[0]+" revoked")
}

func keysRotate(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("", nil); !ok {
		return code
	}
	res, err := c.client.RotateJWTKeyWithResponse(ctx)
	return c.done(res, err, func(w io.Writer) { fmt.Fprintf(w, "kid\t%s\n", oneLine(res.JSON200.Kid)) })
}

func keysJWKS(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("", nil); !ok {
		return code
	}
	res, err := c.client.GetJWKSWithResponse(ctx)
	return c.done(res, err, func(w io.Writer) {
		fmt.Fprintln(w, "KID\tKTY\tALG\tUSE")
		for _, k := range res.JSON200.Keys {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", oneLine(k.Kid), oneLine(k.Kty), orDash(k.Alg), orDash(k.Use))
		}
	})
}
