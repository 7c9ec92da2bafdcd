package doctest

import (
	"strings"
	"testing"

	"github.com/credsign/credsign/internal/testing/testutil"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		want  []Block // Code compared too
		needs []string
		err   string // substring of the error, "" for none
	}{
		{
			name: "shell blocks run, others do not",
			src:  "# t\n```sh\necho a\n```\n\n```bash\necho b\n```\n```Shell title\necho c\n```\n```json\n{}\n```\n```go\nx\n```\n```\nplain\n```\n",
			want: []Block{
				{Line: 2, Lang: "sh", Code: "echo a\n", Run: true},
				{Line: 6, Lang: "bash", Code: "echo b\n", Run: true},
				{Line: 9, Lang: "shell", Code: "echo c\n", Run: true},
				{Line: 12, Lang: "json", Code: "{}\n"},
				{Line: 15, Lang: "go", Code: "x\n"},
				{Line: 18, Lang: "", Code: "plain\n"},
			},
		},
		{
			name: "skip with reason, blank line between",
			src:  "<!-- doctest: skip (needs a Docker engine) -->\n\n```sh\ndocker compose up\n```\n",
			want: []Block{{Line: 3, Lang: "sh", Code: "docker compose up\n", Run: true, Skip: "needs a Docker engine"}},
		},
		{
			name: "output of the last shell block, prose between",
			src:  "```sh\necho 1\n```\n```sh\necho '{}'\n```\nprints\n<!-- doctest: output -->\n```json\n{}\n```\n",
			want: []Block{
				{Line: 1, Lang: "sh", Code: "echo 1\n", Run: true},
				{Line: 4, Lang: "sh", Code: "echo '{}'\n", Run: true},
				{Line: 9, Lang: "json", Code: "{}\n", Output: 2},
			},
		},
		{
			name:  "needs",
			src:   "<!-- doctest: needs vault -->\ntext\n<!-- doctest: needs mosquitto -->\n",
			needs: []string{"vault", "mosquitto"},
		},
		{
			name: "indented fence in a list item, longer fence holds a shorter one",
			src:  "1. run\n   ````sh\n   echo '```'\n     indented\n   ````\n",
			want: []Block{{Line: 2, Lang: "sh", Code: "echo '```'\n  indented\n", Run: true}},
		},
		{
			name: "tilde fence, CRLF line ends",
			src:  "~~~sh\r\necho a\r\n~~~\r\n",
			want: []Block{{Line: 1, Lang: "sh", Code: "echo a\n", Run: true}},
		},
		{name: "skip without reason", src: "<!-- doctest: skip -->\n```sh\nx\n```\n", err: "line 1: a skip needs its reason"},
		{name: "skip with empty reason", src: "<!-- doctest: skip ( ) -->\n```sh\nx\n```\n", err: "needs its reason"},
		{name: "skip before an output block", src: "<!-- doctest: skip (x) -->\n```json\n{}\n```\n", err: "must precede a shell block"},
		{name: "output before a shell block", src: "```sh\nx\n```\n<!-- doctest: output -->\n```sh\ny\n```\n", err: "line 4: an output marker must precede an output block"},
		{name: "output with no shell block before", src: "<!-- doctest: output -->\n```json\n{}\n```\n", err: "no shell block before it"},
		{name: "marker then prose", src: "<!-- doctest: skip (x) -->\nsome text\n```sh\nx\n```\n", err: "must be followed by a fenced block"},
		{name: "marker at the end", src: "text\n<!-- doctest: output -->\n", err: "line 2: the doctest marker must be followed"},
		{name: "two markers", src: "<!-- doctest: skip (a) -->\n<!-- doctest: skip (b) -->\n```sh\nx\n```\n", err: "line 2: doctest marker follows the one on line 1"},
		{name: "unknown marker", src: "<!-- doctest: run twice -->\n```sh\nx\n```\n", err: `unknown doctest marker "run twice"`},
		{name: "unknown need", src: "<!-- doctest: needs docker -->\n", err: `cannot provide "docker"`},
		{name: "unclosed fence", src: "text\n```sh\necho a\n", err: "line 2: fenced block is never closed"},
		{name: "a closing fence must be as long", src: "````sh\nx\n```\n", err: "never closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.src))
			if testutil.WantErr(t, "Parse", err, tt.err) {
				return
			}
			if len(doc.Blocks) != len(tt.want) {
				t.Fatalf("Parse: %d blocks %+v, want %d", len(doc.Blocks), doc.Blocks, len(tt.want))
			}
			for i := range tt.want {
				if doc.Blocks[i] != tt.want[i] {
					t.Errorf("block %d: %+v, want %+v", i, doc.Blocks[i], tt.want[i])
				}
			}
			if strings.Join(doc.Needs, ",") != strings.Join(tt.needs, ",") {
				t.Errorf("needs %v, want %v", doc.Needs, tt.needs)
			}
		})
	}
}

func TestCheckOutput(t *testing.T) {
	creds := `{"clientId":"c","cloud":"huawei","expiresAt":"2026-11-23T20:00:00Z","issuedAt":"2026-11-23T19:46:49.628307462Z","port":8883,"tls":true,"labels":{"site":"sz"},"list":[{"a":1}]}`
	tests := []struct {
		name string
		lang string
		want string
		got  string
		err  string // substring of the error, "" for none
	}{
		{name: "same shape, other values", lang: "json", want: creds,
			got: `{"clientId":"x","cloud":"azure","expiresAt":"2027-01-01T00:00:00.5Z","issuedAt":"2027-01-01T00:00:00Z","port":1,"tls":false,"labels":{"site":"x"},"list":[{"a":2},{"a":3}]}`},
		{name: "the last JSON value after other output", lang: "json", want: `{"a":1}`,
			got: "{\"id\":\"lamp-7\"}\nsome text\n{\n  \"a\": 2\n}\n\n"},
		{name: "a problem instead", lang: "json", want: creds,
			got: `{"type":"about:blank","title":"Unsupported Media Type","status":415}`, err: "$ lacks clientId, cloud"},
		{name: "an extra key", lang: "json", want: `{"a":1}`, got: `{"a":1,"b":2}`, err: "$ has b, which the document does not show"},
		{name: "another kind", lang: "json", want: `{"expiresAt":null}`, got: `{"expiresAt":"2026-01-01T00:00:00Z"}`, err: "$.expiresAt is string"},
		{name: "not a time", lang: "json", want: `{"t":"2026-11-23T20:00:00Z"}`, got: `{"t":"1700000000"}`, err: "$.t is \"1700000000\", the document shows an RFC 3339 time"},
		{name: "nested key", lang: "json", want: creds, got: strings.Replace(creds, `"site"`, `"room"`, 1), err: "$.labels lacks site"},
		{name: "array element", lang: "json", want: creds, got: strings.Replace(creds, `[{"a":1}]`, `[{"a":1},{"b":1}]`, 1), err: "$.list[1] lacks a"},
		{name: "empty array", lang: "json", want: creds, got: strings.Replace(creds, `[{"a":1}]`, `[]`, 1), err: "$.list is empty"},
		{name: "no JSON", lang: "json", want: `{}`, got: "curl: (7) Failed to connect\n", err: "printed no JSON value"},
		{name: "expected output not JSON", lang: "json", want: `{"a":1}…`, got: `{}`, err: "not one JSON value"},
		{name: "lines with …, in order, others between", lang: "text",
			want: "a header\n\n    export CREDSIGN_ADMIN_TOKEN=csa_…\n",
			got:  "\na header\nsomething\n    export CREDSIGN_ADMIN_TOKEN=csa_0123abc\n"},
		{name: "a line missing", lang: "text", want: "export X=csa_…\n", got: "export X=other\n", err: `matches the document's "export X=csa_…"`},
		{name: "lines out of order", lang: "text", want: "b\na\n", got: "a\nb\n", err: `"a"`},
		{name: "regexp characters are literal", lang: "", want: `"p": "a.c|d",`, got: `"p": "abc|d",`, err: "matches"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.WantErr(t, "CheckOutput", CheckOutput(Block{Lang: tt.lang, Code: tt.want}, []byte(tt.got)), tt.err)
		})
	}
}

// FuzzParse checks that Parse never panics, and that what it returns holds
// together: lines in order, outputs pointing back at a shell block, skips
// only on shell blocks.
func FuzzParse(f *testing.F) {
	f.Add("```sh\necho a\n```\n<!-- doctest: output -->\n```json\n{}\n```\n")
	f.Add("<!-- doctest: skip (why) -->\n  ~~~~bash\n~~~\n  ~~~~\n")
	f.Add("<!-- doctest: needs vault -->\n````\n```sh\n````\n")
	f.Fuzz(func(t *testing.T, src string) {
		doc, err := Parse([]byte(src))
		if err != nil {
			return
		}
		last := 0
		for i, b := range doc.Blocks {
			if b.Line <= last {
				t.Fatalf("block %d at line %d after line %d", i, b.Line, last)
			}
			last = b.Line
			if b.Skip != "" && !b.Run {
				t.Fatalf("block %d: skip on a %q block", i, b.Lang)
			}
			if b.Output != 0 && (b.Output > i || !doc.Blocks[b.Output-1].Run) {
				t.Fatalf("block %d: output of block %d", i, b.Output)
			}
		}
	})
}
