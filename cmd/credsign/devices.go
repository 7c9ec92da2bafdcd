package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/credsign/credsign/internal/apiclient"
)

// pageFlags are the paging flags of a list.
type pageFlags struct {
	after string
	limit int
	all   bool
}

func (p *pageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.after, "after", "", "start after this `ID` (the previous page's next)")
	fs.IntVar(&p.limit, "limit", 0, "page size, 1 to 1000 (default: the server's, 100)")
	fs.BoolVar(&p.all, "all", false, "follow next to the last page (with --json: one document holding every item, next null)")
}

// fetchPage gets one page of at most limit items (nil: the server's
// page size) after a cursor.
type fetchPage func(ctx context.Context, after *string, limit *int) (*http.Response, error)

// list prints the pages of a list whose items, each a T, are under key:
// one page, or with --all every page following next. row prints an item
// for people. It reads each answer whole and unparsed: --json prints the
// raw items of each page, and a page is decoded once, not twice.
func list[T any](ctx context.Context, c *clientRun, p pageFlags, key, header string, fetch fetchPage, row func(w io.Writer, item T)) int {
	var after *string
	if p.after != "" {
		after = &p.after
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if !c.json {
		fmt.Fprintln(tw, header)
	}
	failed := func(err error) int {
		_ = tw.Flush()
		return c.transport(err)
	}
	for n := 0; ; n++ {
		status, body, err := readAnswer(fetch(ctx, after, optional(p.limit)))
		if err != nil {
			return failed(err)
		}
		if code, refused := c.refused(status, body); refused {
			_ = tw.Flush()
			return code
		}
		var page map[string]json.RawMessage
		var items []json.RawMessage
		var next *string
		err = json.Unmarshal(body, &page)
		if err == nil {
			err = errors.Join(json.Unmarshal(page[key], &items), json.Unmarshal(page["next"], &next))
		}
		if err != nil {
			return failed(fmt.Errorf("the server's answer is not a list of %s: %w", key, err))
		}
		switch {
		case c.json && !p.all:
			c.printJSON(body)
		case c.json:
			for i, it := range items {
				sep := ","
				if n == 0 && i == 0 {
					sep = "{\"" + key + "\":["
				}
				fmt.Fprintf(c.stdout, "%s%s", sep, it)
			}
			if n == 0 && len(items) == 0 {
				fmt.Fprintf(c.stdout, "{\"%s\":[", key)
			}
		default:
			for _, it := range items {
				var v T
				if err := json.Unmarshal(it, &v); err != nil {
					return failed(fmt.Errorf("the server's answer is not a list of %s: %w", key, err))
				}
				row(tw, v)
			}
		}
		if next == nil || !p.all {
			_ = tw.Flush()
			if c.json && p.all {
				fmt.Fprintln(c.stdout, `],"next":null}`)
			}
			if next != nil && !c.json {
				fmt.Fprintf(c.stderr, "%s: more after this page: --after %s, or --all\n", c.name, *next)
			}
			return exitOK
		}
		if after != nil && *next == *after {
			return failed(fmt.Errorf("the server answered the same cursor %q twice", *next))
		}
		after = next
	}
}

// readAnswer reads an answer whole: its status and body.
func readAnswer(res *http.Response, err error) (int, []byte, error) {
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return res.StatusCode, b, nil
}

func devicesList(ctx context.Context, c *clientRun) int {
	var p pageFlags
	var cloud string
	var labels []string
	ok, code := c.parse("", func(fs *flag.FlagSet) {
		p.register(fs)
		fs.StringVar(&cloud, "cloud", "", "only devices of this `cloud`")
		fs.Func("label", "only devices with this label, `k=v` (repeat: every one must match)", func(s string) error {
			if !strings.Contains(s, "=") {
				return fmt.Errorf("want key=value, not %q", s)
			}
			labels = append(labels, s)
			return nil
		})
	})
	if !ok {
		return code
	}
	params := apiclient.ListDevicesParams{Cloud: optional(cloud)}
	if len(labels) > 0 {
		params.Label = &labels
	}
	return list(ctx, c, p, "devices", "ID\tCLOUD\tGROUP\tLABELS\tVERSION\tUPDATED", func(ctx context.Context, after *string, limit *int) (*http.Response, error) {
		params.After, params.Limit = after, limit
		return c.client.ListDevices(ctx, &params)
	}, deviceRow)
}

func deviceRow(w io.Writer, d apiclient.Device) {
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", oneLine(d.Id), oneLine(d.Cloud), orDash(d.Group), labelsText(&d.Labels), d.Version, d.UpdatedAt.UTC().Format(time.RFC3339))
}

// deviceTable prints one device for people, field by field (never a
// secret: the API has none to give).
func deviceTable(w io.Writer, d *apiclient.Device, etag string) {
	fmt.Fprintf(w, "id\t%s\ncloud\t%s\ngroup\t%s\n", oneLine(d.Id), oneLine(d.Cloud), orDash(d.Group))
	fmt.Fprintf(w, "params\t%s\nlabels\t%s\n", paramsText(d.Params), labelsText(&d.Labels))
	rotated := "-"
	if d.SecretRotatedAt != nil {
		rotated = d.SecretRotatedAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "secretVersion\t%d\nsecretRotated\t%s\n", d.SecretVersion, rotated)
	fmt.Fprintf(w, "version\t%d\netag\t%s\ncreated\t%s\nupdated\t%s\n", d.Version, orDash(&etag), d.CreatedAt.UTC().Format(time.RFC3339), d.UpdatedAt.UTC().Format(time.RFC3339))
}

// paramsText is a device's or group's params as one line of JSON.
func paramsText(p map[string]apiclient.ParamValue) string {
	if len(p) == 0 {
		return "-"
	}
	b, _ := json.Marshal(p)
	return oneLine(string(b))
}

// etag is an answer's ETag header.
func etag(res *http.Response) string {
	return res.Header.Get("ETag")
}

func devicesGet(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("ID", nil); !ok {
		return code
	}
	res, err := c.client.GetDeviceWithResponse(ctx, c.pos[0])
	return c.done(res, err, func(w io.Writer) { deviceTable(w, res.JSON200, etag(res.HTTPResponse)) })
}

// ifMatchFlag registers --if-match: the verb does what it does (replace,
// patch, rotate) only if the device's ETag is still the one given.
func ifMatchFlag(fs *flag.FlagSet, ifMatch *string, does string) {
	fs.StringVar(ifMatch, "if-match", "", does+" only if the device's ETag is still this one (from devices get)")
}

func devicesPut(ctx context.Context, c *clientRun) int {
	var doc []byte
	var ifMatch string
	var create bool
	ok, code := c.parse("ID", func(fs *flag.FlagSet) {
		c.documentFlag(fs, &doc, "the device document {cloud, params, secret, labels, group} as JSON in `FILE` ('-' for standard input)")
		ifMatchFlag(fs, &ifMatch, "replace")
		fs.BoolVar(&create, "create", false, "create only: refuse (exit 5) if the device exists")
	})
	if !ok {
		return code
	}
	params := apiclient.PutDeviceParams{IfMatch: optional(ifMatch)}
	if create {
		star := apiclient.PutDeviceParamsIfNoneMatch("*")
		params.IfNoneMatch = &star
	}
	res, err := c.client.PutDeviceWithBodyWithResponse(ctx, c.pos[0], &params, "application/json", bytes.NewReader(doc))
	return c.done(res, err, func(w io.Writer) {
		d := res.JSON200
		if d == nil {
			d = res.JSON201
		}
		deviceTable(w, d, etag(res.HTTPResponse))
	})
}

// mergePatch is the content type of a JSON Merge Patch (RFC 7396).
const mergePatch = "application/merge-patch+json"

func devicesPatch(ctx context.Context, c *clientRun) int {
	var doc []byte
	var ifMatch string
	ok, code := c.parse("ID", func(fs *flag.FlagSet) {
		c.documentFlag(fs, &doc, "a JSON merge patch of {cloud, params, labels, group} in `FILE` ('-' for standard input); null removes a member")
		ifMatchFlag(fs, &ifMatch, "patch")
	})
	if !ok {
		return code
	}
	res, err := c.client.PatchDeviceWithBodyWithResponse(ctx, c.pos[0], &apiclient.PatchDeviceParams{IfMatch: optional(ifMatch)}, mergePatch, bytes.NewReader(doc))
	return c.done(res, err, func(w io.Writer) { deviceTable(w, res.JSON200, etag(res.HTTPResponse)) })
}

// readSecret reads a new secret from a file, or "-" for standard input:
// its first line, without the line end. The secret is sent and never
// printed: errors name the file, not what it holds.
func (c *clientRun) readSecret(file string) (string, error) {
	b, err := c.readInput("secret-file", file, "the new secret", 64<<10)
	if err != nil {
		return "", err
	}
	secret, _, _ := strings.Cut(string(b), "\n")
	if secret = strings.TrimSuffix(secret, "\r"); secret == "" {
		return "", fmt.Errorf("--secret-file %s: the first line is empty", file)
	}
	return secret, nil
}

func devicesRotateSecret(ctx context.Context, c *clientRun) int {
	var secret, ifMatch string
	ok, code := c.parse("ID", func(fs *flag.FlagSet) {
		c.inputFlag(fs, "secret-file", "`FILE` whose first line is the new secret as the cloud's console shows it ('-' for standard input)", func(file string) (err error) {
			secret, err = c.readSecret(file)
			return err
		})
		ifMatchFlag(fs, &ifMatch, "rotate")
	})
	if !ok {
		return code
	}
	res, err := c.client.RotateDeviceSecretWithResponse(ctx, c.pos[0], &apiclient.RotateDeviceSecretParams{IfMatch: optional(ifMatch)}, apiclient.SecretRotation{Secret: &secret})
	return c.done(res, err, func(w io.Writer) { deviceTable(w, res.JSON200, etag(res.HTTPResponse)) })
}

func devicesDelete(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("ID", nil); !ok {
		return code
	}
	res, err := c.client.DeleteDeviceWithResponse(ctx, c.pos[0])
	return c.deleted(res, err, "device "+c.pos[0]+" deleted")
}

func groupsList(ctx context.Context, c *clientRun) int {
	var p pageFlags
	if ok, code := c.parse("", p.register); !ok {
		return code
	}
	return list(ctx, c, p, "groups", "ID\tCLOUD\tREGISTRATION\tLABELS\tVERSION\tUPDATED", func(ctx context.Context, after *string, limit *int) (*http.Response, error) {
		return c.client.ListGroups(ctx, &apiclient.ListGroupsParams{After: after, Limit: limit})
	}, func(w io.Writer, g apiclient.Group) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", oneLine(g.Id), oneLine(g.Cloud), registrationText(g.Registration), labelsText(&g.Labels), g.Version, g.UpdatedAt.UTC().Format(time.RFC3339))
	})
}

func registrationText(r *apiclient.GroupRegistration) string {
	if r == nil {
		return "-"
	}
	return oneLine(string(r.Kind))
}

func groupTable(w io.Writer, g *apiclient.Group) {
	fmt.Fprintf(w, "id\t%s\ncloud\t%s\nparams\t%s\nlabels\t%s\nregistration\t%s\n", oneLine(g.Id), oneLine(g.Cloud), paramsText(g.Params), labelsText(&g.Labels), registrationText(g.Registration))
	fmt.Fprintf(w, "version\t%d\ncreated\t%s\nupdated\t%s\n", g.Version, g.CreatedAt.UTC().Format(time.RFC3339), g.UpdatedAt.UTC().Format(time.RFC3339))
}

func groupsGet(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("GROUP", nil); !ok {
		return code
	}
	res, err := c.client.GetGroupWithResponse(ctx, c.pos[0])
	return c.done(res, err, func(w io.Writer) { groupTable(w, res.JSON200) })
}

func groupsPut(ctx context.Context, c *clientRun) int {
	doc, ok, code := c.parseDocument("GROUP", "the group document {cloud, params, secret, labels, registration} as JSON in `FILE` ('-' for standard input)")
	if !ok {
		return code
	}
	res, err := c.client.PutGroupWithBodyWithResponse(ctx, c.pos[0], "application/json", bytes.NewReader(doc))
	return c.done(res, err, func(w io.Writer) {
		g := res.JSON200
		if g == nil {
			g = res.JSON201
		}
		groupTable(w, g)
	})
}

func groupsPatch(ctx context.Context, c *clientRun) int {
	doc, ok, code := c.parseDocument("GROUP", "a JSON merge patch of {cloud, params, labels, registration} in `FILE` ('-' for standard input); null removes a member")
	if !ok {
		return code
	}
	res, err := c.client.PatchGroupWithBodyWithResponse(ctx, c.pos[0], mergePatch, bytes.NewReader(doc))
	return c.done(res, err, func(w io.Writer) { groupTable(w, res.JSON200) })
}

func groupsDelete(ctx context.Context, c *clientRun) int {
	if ok, code := c.parse("GROUP", nil); !ok {
		return code
	}
	res, err := c.client.DeleteGroupWithResponse(ctx, c.pos[0])
	return c.deleted(res, err, "group "+c.pos[0]+" deleted")
}
