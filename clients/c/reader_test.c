/* Unit test of the C client's JSON reader and time parser (run by
 * clients/clients_test.go, built with AddressSanitizer and UBSan). */
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
	if (failures)
		return 1;
	puts("ok");
	return 0;
}
