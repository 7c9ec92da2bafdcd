/* Unit test of the C client's JSON reader and time parser, and of the
 * pieces of its DPoP proofs (run by clients/clients_test.go, built with
 * AddressSanitizer and UBSan; clients/keys_test.go checks whole proofs). */
#define main client_main
#include "credsign_client.c"
#undef main

static int failures;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "FAIL: %s\n", what);
		failures++;
	}
}

int main(void)
{
	char out[128], small[4];
	double t;
	/* Go's encoding/json writes & as \u0026 (Azure's password, Alibaba's username). */
	const char *js = "{\"a\":{\"x\":[1,\"}\",{\"password\":\"no\"}]},\"errors\":[{\"field\":\"b\"}],"
			 "\"password\":\"S sr=a\\u0026sig=b\\\"q\\\\\\/\\u00e9\\ud83d\\ude00\\n\","
			 " \"port\" : 8883 ,\"tls\":true,\"expiresAt\":null}";
	check(json_get(js, "password", out, sizeof out) && !strcmp(out, "S sr=a&sig=b\"q\\/\xc3\xa9\xf0\x9f\x98\x80\n"),
	      "string with escapes, after nested values holding the same key");
	check(json_get(js, "port", out, sizeof out) && !strcmp(out, "8883"), "number with spaces around");
	check(json_get(js, "tls", out, sizeof out) && !strcmp(out, "true"), "literal");
	check(json_get(js, "expiresAt", out, sizeof out) && !strcmp(out, "null"), "null");
	check(!json_get(js, "field", out, sizeof out), "a key inside a nested array is not top-level");
	check(!json_get(js, "missing", out, sizeof out), "missing key");
	check(!json_get("{\"p\":\"\\u12\"}", "p", out, sizeof out), "short \\u escape");
	check(!json_get("{\"p\":\"\\x\"}", "p", out, sizeof out), "unknown escape");
	check(!json_get("{\"p\":\"unterminated", "p", out, sizeof out), "unterminated string");
	check(!json_get("{\"p\":\"abcd\"}", "p", small, sizeof small), "value longer than the buffer");
	check(!json_get("[\"p\"]", "p", out, sizeof out), "not an object");
	const char *topics = json_find("{\"topics\": {\"commands\":\"c/#\",\"telemetry\":\"t/up\"},\"x\":1}", "topics");
	check(topics && json_get(topics, "telemetry", out, sizeof out) && !strcmp(out, "t/up"), "a key of a nested object");
	check(!json_find(js, "x"), "a key of a nested object is not top-level");
	check(parse_time("1970-01-01T00:00:00Z", &t) && t == 0, "epoch");
	check(parse_time("2026-11-23T19:38:04.5Z", &t) && t == 1795462684.5, "fraction");
	check(parse_time("2000-02-29T00:00:00Z", &t) && t == 951782400, "leap day");
	check(parse_time("2026-11-23T19:38:04.514154053Z", &t) && t > 1795462684.514 && t < 1795462684.515, "nanoseconds");
	check(!parse_time("yesterday", &t), "not a time");

	/* base64url without padding (RFC 4648 section 10 vectors) */
	struct {
		const char *in, *out;
	} b64[] = {{"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"},
		   {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
	for (size_t i = 0; i < sizeof b64 / sizeof *b64; i++)
		check(b64url((const unsigned char *)b64[i].in, strlen(b64[i].in), out, sizeof out) == strlen(b64[i].out) &&
			  !strcmp(out, b64[i].out),
		      b64[i].out);
	check(b64url((const unsigned char *)"foob", 4, small, sizeof small) == 0, "base64url into too small a buffer");
	/* JSON strings in the claims */
	strcpy(out, "{");
	check(json_put_string(out, sizeof out, "a\"b\\c\n\xc3\xa9") && !strcmp(out, "{\"a\\\"b\\\\c\\u000a\xc3\xa9\""),
	      "a JSON string with quotes, backslashes, a control character and UTF-8");
	small[0] = 0;
	check(!json_put_string(small, sizeof small, "abc"), "a JSON string too long for the buffer");
	/* DPoP-Nonce and WWW-Authenticate header lines */
	const char *line = "dpop-nonce:  n-0S6_WzA2Mj \r\n";
	dpop_note_nonce(line, strlen(line));
	check(!strcmp(dpop_nonce, "n-0S6_WzA2Mj"), "a DPoP-Nonce header, any case, trimmed");
	dpop_note_nonce("DPoP-Nonce: \r\n", 14);
	check(dpop_nonce_at > 0, "the time the nonce came");
	check(!strcmp(dpop_nonce, "n-0S6_WzA2Mj"), "an empty DPoP-Nonce keeps the last one");
	dpop_note_nonce("Retry-After: 3\r\n", 16);
	check(!strcmp(dpop_nonce, "n-0S6_WzA2Mj"), "another header keeps the nonce");
	const char *challenges[] = {"WWW-Authenticate: DPoP error=\"use_dpop_nonce\"\r\n",
				    "www-authenticate: DPoP error=\"invalid_dpop_proof\", error_description=\"bad-nonce\"\r\n",
				    "WWW-Authenticate: DPoP error=\"invalid_dpop_proof\", error_description=\"stale\"\r\n"};
	for (size_t i = 0; i < sizeof challenges / sizeof *challenges; i++)
		check(dpop_wants_nonce(challenges[i], strlen(challenges[i])), challenges[i]);
	const char *final[] = {"WWW-Authenticate: DPoP error=\"invalid_dpop_proof\", error_description=\"unknown-key\"\r\n",
			       "WWW-Authenticate: Bearer realm=\"credsign\"\r\n", "X-Note: use_dpop_nonce\r\n"};
	for (size_t i = 0; i < sizeof final / sizeof *final; i++)
		check(!dpop_wants_nonce(final[i], strlen(final[i])), final[i]);
	/* the signing input, and refusing to overflow */
	char si[512];
	const char *jwk = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"X\",\"y\":\"Y\"}";
	check(dpop_signing_input(jwk, "j", "GET", "https://h/p", 7, NULL, si, sizeof si) > 0 &&
		  !strcmp(strchr(si, '.') + 1, "eyJqdGkiOiJqIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9oL3AiLCJpYXQiOjd9"),
	      "claims without a nonce");
	check(dpop_signing_input(jwk, "j", "GET", "https://h/p", 7, "n", si, 80) == 0, "a signing input too long for the buffer");
	if (failures)
		return 1;
	puts("ok");
	return 0;
}
