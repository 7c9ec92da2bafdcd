/*
 * credsign device client in C: libcurl + Eclipse Paho MQTT C (synchronous API).
 *
 * Fetches short-lived MQTT credentials from credsign with the device token,
 * connects to the cloud's broker, publishes a message every CREDSIGN_INTERVAL
 * seconds to the credentials' telemetry topic and listens on their commands
 * topic, refreshes at refreshAfter (plus jitter), reconnects before an
 * enforced expiry or when the device moved (cloud, host, port or topics
 * changed), backs off on failures (honouring Retry-After), and stops on a
 * permanent refusal. A device token minted with a lifetime is rotated at two
 * thirds of it and the new one written to the token file atomically.
 * docs/devices.md is the protocol it follows.
 *
 * Settings (environment): CREDSIGN_SERVER, CREDSIGN_DEVICE, CREDSIGN_TOKEN_FILE,
 * CREDSIGN_CA_FILE (PEM for credsign; when set, the only CA trusted),
 * CREDSIGN_BROKER_CA_FILE (PEM for the broker; likewise), CREDSIGN_TTL
 * (seconds), CREDSIGN_INTERVAL (seconds, default 10), and optionally
 * CREDSIGN_TOPIC and CREDSIGN_COMMANDS_TOPIC instead of the credentials'
 * telemetry and commands topics.
 *
 * Exit status: 2 bad settings, 3 credsign refused the device for good
 * (401/403/404 or another 4xx); otherwise it runs until killed. Logs go to
 * stderr and never hold the token or the password; keep Paho's own trace
 * off (MQTT_C_CLIENT_TRACE unset), as it may show the CONNECT packet.
 *
 * With CREDSIGN_KEY (a PEM key file, mode 0600, or a pkcs11: URI with
 * CREDSIGN_PKCS11_PIN_FILE or CREDSIGN_PKCS11_PIN and optionally
 * CREDSIGN_PKCS11_MODULE) the client signs a DPoP proof for each request
 * with that ECDSA P-256 key instead of sending a token; see "the device key"
 * below.
 *
 * Build: cc -O2 -Wall -o credsign-client credsign_client.c -lcurl -lpaho-mqtt3cs -lcrypto
 */
#define _GNU_SOURCE
/* The PKCS#11 engine is an OpenSSL ENGINE, an API OpenSSL 3 deprecates (the
 * provider that replaces it, pkcs11-provider, is not in Debian 12); asking for
 * the 1.1.1 API keeps the ENGINE calls free of deprecation warnings. */
#define OPENSSL_API_COMPAT 10101
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <curl/curl.h>
#include <openssl/ecdsa.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

enum { FETCH_OK, FETCH_RETRY, FETCH_PERMANENT };

struct config {
	const char *server, *device, *token_file, *ca_file, *broker_ca_file, *topic, *commands_topic;
	long ttl;
	double interval;
};

struct creds {
	char cloud[32], device[256], client_id[512], username[512], password[1024], host[256];
	char telemetry[512], commands[512];
	long port;
	int tls, enforced;
	double refresh_at, expires_at; /* monotonic seconds; expires_at 0: never */
};

static void logf_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("credsign-client: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static double uniform(double lo, double hi) { return lo + (hi - lo) * (rand() / (RAND_MAX + 1.0)); }

/* Exponential back-off with jitter in [d/2, d] (1 s doubling to 120 s), or
 * the server's Retry-After when that is longer. */
static double backoff(int failures, double retry_after)
{
	double d = 1;
	for (int i = 0; i < failures && d < 120; i++)
		d *= 2;
	if (d > 120)
		d = 120;
	d = uniform(d / 2, d);
	return retry_after > d ? retry_after : d;
}

/* ---- a reader for credsign's flat JSON objects ---- */

static const char *skip_ws(const char *p)
{
	while (*p && isspace((unsigned char)*p))
		p++;
	return p;
}

static void put_utf8(char **o, char *end, unsigned cp)
{
	char b[4];
	int n = 0;
	if (cp < 0x80)
		b[n++] = cp;
	else if (cp < 0x800)
		b[n++] = 0xC0 | cp >> 6, b[n++] = 0x80 | (cp & 0x3F);
	else if (cp < 0x10000)
		b[n++] = 0xE0 | cp >> 12, b[n++] = 0x80 | (cp >> 6 & 0x3F), b[n++] = 0x80 | (cp & 0x3F);
	else
		b[n++] = 0xF0 | cp >> 18, b[n++] = 0x80 | (cp >> 12 & 0x3F), b[n++] = 0x80 | (cp >> 6 & 0x3F),
		b[n++] = 0x80 | (cp & 0x3F);
	for (int i = 0; i < n && *o < end; i++)
		*(*o)++ = b[i];
}

/* Reads exactly four hex digits. */
static int hex4(const char *p, unsigned *out)
{
	for (int i = 0; i < 4; i++)
		if (!isxdigit((unsigned char)p[i]))
			return 0;
	return sscanf(p, "%4x", out) == 1;
}

/* Decodes the JSON string at p (at its opening quote) into out; returns the
 * character after the closing quote, or NULL when malformed or too long. */
static const char *json_string(const char *p, char *out, size_t size)
{
	char *o = out, *end = out + size - 1;
	if (*p++ != '"')
		return NULL;
	while (*p && *p != '"') {
		unsigned cp = (unsigned char)*p++;
		if (cp == '\\') {
			switch (*p++) {
			case '"': cp = '"'; break;
			case '\\': cp = '\\'; break;
			case '/': cp = '/'; break;
			case 'b': cp = '\b'; break;
			case 'f': cp = '\f'; break;
			case 'n': cp = '\n'; break;
			case 'r': cp = '\r'; break;
			case 't': cp = '\t'; break;
			case 'u': {
				unsigned lo;
				if (!hex4(p, &cp))
					return NULL;
				p += 4;
				if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo)) {
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					p += 6;
				}
				break;
			}
			default:
				return NULL;
			}
		}
		if (o >= end)
			return NULL;
		put_utf8(&o, end, cp);
	}
	*o = 0;
	return *p == '"' ? p + 1 : NULL;
}

/* Skips one JSON value (string, literal, or nested object/array). */
static const char *json_skip(const char *p)
{
	int depth = 0;
	do {
		p = skip_ws(p);
		if (*p == '"') {
			p++;
			while (*p && *p != '"')
				p += (*p == '\\' && p[1]) ? 2 : 1;
			if (*p)
				p++;
		} else if (*p == '{' || *p == '[') {
			depth++, p++;
		} else if (*p == '}' || *p == ']') {
			depth--, p++;
		} else if (*p == ',' || *p == ':') {
			p++;
		} else if (*p) {
			while (*p && !strchr(",}] \t\r\n", *p))
				p++;
		}
	} while (*p && depth > 0);
	return p;
}

/* Finds key in the top-level object js: its value's first character, or
 * NULL. */
static const char *json_find(const char *js, const char *key)
{
	char k[64];
	const char *p = skip_ws(js);
	if (*p++ != '{')
		return 0;
	for (;;) {
		p = skip_ws(p);
		if (*p != '"' || !(p = json_string(p, k, sizeof k)))
			return 0;
		p = skip_ws(p);
		if (*p++ != ':')
			return 0;
		p = skip_ws(p);
		if (strcmp(k, key) == 0)
			return p;
		p = skip_ws(json_skip(p));
		if (*p++ != ',')
			return NULL;
	}
}

/* Finds key in the top-level object js and copies its value into out (a
 * string decoded, a number or literal as written). Returns 1 when found. */
static int json_get(const char *js, const char *key, char *out, size_t size)
{
	const char *p = json_find(js, key);
	if (!p)
		return 0;
	if (*p == '"')
		return json_string(p, out, size) != NULL;
	size_t n = strcspn(p, ",} \t\r\n");
	if (n >= size)
		return 0;
	memcpy(out, p, n);
	out[n] = 0;
	return 1;
}

/* RFC 3339 UTC time ("2026-11-23T19:38:04.514154053Z") to Unix seconds. */
static int parse_time(const char *s, double *out)
{
	int y, mo, d, h, mi, sec, n = 0;
	if (sscanf(s, "%d-%d-%dT%d:%d:%d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return 0;
	double frac = s[n] == '.' ? strtod(s + n, NULL) : 0;
	y -= mo <= 2;
	long era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
	long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
	*out = days * 86400.0 + h * 3600 + mi * 60 + sec + frac;
	return 1;
}

/* ---- the device key and its DPoP proofs (docs/devices.md) ----
 *
 * With CREDSIGN_KEY set, the client holds an ECDSA P-256 key instead of a
 * bearer token and authenticates each credentials request with a fresh DPoP
 * proof (RFC 9449 section 4, used without an access token): a compact JWS
 * whose header carries the public key, whose claims bind it to the method,
 * the URL, the time and the server's nonce, signed ES256. The key is a PEM
 * file (mode 0600) or, through OpenSSL's pkcs11 engine (libp11), a key in a
 * PKCS#11 token (a secure element, an HSM, SoftHSM) that never leaves it.
 *
 * A firmware team on mbedTLS follows the same steps; the comments marked
 * "mbedTLS:" say what differs there. */

struct devkey {
	EVP_PKEY *pkey;
	ENGINE *engine; /* set for a PKCS#11 key */
	char jwk[160];  /* the public JWK as the JWS header carries it */
	char kid[48];   /* its RFC 7638 thumbprint, to log and to bind */
};

static struct devkey devkey;      /* pkey is NULL in bearer-token mode */
static char dpop_nonce[256];      /* the last DPoP-Nonce credsign sent; "" before the first */
static double dpop_nonce_at;      /* when it came (monotonic seconds) */

/* How long a nonce is worth sending: credsign's stay valid for 5 minutes.
 * An older one would be refused (bad-nonce); without one, a server that
 * wants nonces answers use_dpop_nonce with a fresh one. */
#define DPOP_NONCE_MAX_AGE 240.0

static const char b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Base64url without padding (RFC 7515 section 2) of n bytes into out;
 * returns the length written, or 0 when out is too small. */
static size_t b64url(const unsigned char *in, size_t n, char *out, size_t size)
{
	size_t o = 0;
	if ((n + 2) / 3 * 4 + 1 > size)
		return 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
		out[o++] = b64url_chars[v >> 18 & 63];
		out[o++] = b64url_chars[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = b64url_chars[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = b64url_chars[v & 63];
	}
	out[o] = 0;
	return o;
}

/* Appends s to out as a JSON string (quoted, escaped); 0 when it does not fit. */
static int json_put_string(char *out, size_t size, const char *s)
{
	size_t o = strlen(out);
	if (o + 1 >= size)
		return 0;
	out[o++] = '"';
	for (; *s; s++) {
		unsigned char c = *s;
		char esc[8] = {0};
		if (c == '"' || c == '\\')
			esc[0] = '\\', esc[1] = c;
		else if (c < 0x20)
			snprintf(esc, sizeof esc, "\\u%04x", c);
		else
			esc[0] = c;
		size_t n = strlen(esc);
		if (o + n + 2 >= size)
			return 0;
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o++] = '"';
	out[o] = 0;
	return 1;
}

/* Reads a PIN (first line of the file named by CREDSIGN_PKCS11_PIN_FILE, or
 * CREDSIGN_PKCS11_PIN) into pin; returns 1 when one is set. */
static int read_pin(char *pin, size_t size)
{
	const char *file = getenv("CREDSIGN_PKCS11_PIN_FILE"), *env = getenv("CREDSIGN_PKCS11_PIN");
	pin[0] = 0;
	if (file && *file) {
		FILE *f = fopen(file, "r");
		if (!f)
			return 0;
		int ok = fgets(pin, (int)size, f) != NULL;
		fclose(f);
		pin[strcspn(pin, "\r\n")] = 0;
		return ok && *pin;
	}
	if (env && *env && strlen(env) < size) {
		strcpy(pin, env);
		return 1;
	}
	return 0;
}

/* Loads the key of a pkcs11: URI (RFC 7512) through OpenSSL's pkcs11 engine;
 * CREDSIGN_PKCS11_MODULE names the token's PKCS#11 module (default: the
 * engine's, p11-kit's proxy). The engine logs in with the PIN; the private
 * key stays in the token, which signs.
 * mbedTLS: no PKCS#11 there; a secure element is driven through its vendor
 * library or a PSA driver (an ATECC608 with cryptoauthlib: atcab_get_pubkey
 * and atcab_sign, which returns r||s already), or mbedtls_pk_setup_opaque on
 * a PSA key id (MBEDTLS_PSA_CRYPTO_SE_C). */
static EVP_PKEY *load_pkcs11_key(const char *uri, ENGINE **engine)
{
	char pin[256];
	const char *module = getenv("CREDSIGN_PKCS11_MODULE");
	EVP_PKEY *k = NULL;
	ENGINE *e = ENGINE_by_id("pkcs11");
	if (!e) {
		logf_("OpenSSL has no pkcs11 engine (Debian: apt-get install libengine-pkcs11-openssl)");
		return NULL;
	}
	int ok = (!module || !*module || ENGINE_ctrl_cmd_string(e, "MODULE_PATH", module, 0)) && ENGINE_init(e);
	if (!ok) {
		logf_("the pkcs11 engine cannot load the PKCS#11 module %s", module && *module ? module : "(default)");
		ENGINE_free(e);
		return NULL;
	}
	if (read_pin(pin, sizeof pin)) {
		ok = ENGINE_ctrl_cmd_string(e, "PIN", pin, 0);
		explicit_bzero(pin, sizeof pin);
		if (!ok) {
			logf_("the pkcs11 engine refused the PIN setting");
			ENGINE_finish(e);
			ENGINE_free(e);
			return NULL;
		}
	}
	k = ENGINE_load_private_key(e, uri, NULL, NULL);
	if (!k) {
		logf_("no private key at that pkcs11: URI (wrong token, object or PIN?)");
		ENGINE_finish(e);
		ENGINE_free(e);
		return NULL;
	}
	*engine = e;
	return k;
}

/* Loads a PEM private key file, refusing one that others may read.
 * mbedTLS: mbedtls_pk_parse_keyfile (or _parse_key on a buffer from flash). */
static EVP_PKEY *load_file_key(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		logf_("cannot open the device key file: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
		logf_("the device key file may be read by others (mode %03o); chmod 600 it", (unsigned)(st.st_mode & 0777));
		close(fd);
		return NULL;
	}
	FILE *f = fdopen(fd, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	else
		close(fd);
	if (!k)
		logf_("the device key file holds no PEM private key");
	return k;
}

/* Loads the device key named by spec (a file or a pkcs11: URI) into k and
 * computes its public JWK and thumbprint. Returns 1 on success. */
static int key_load(const char *spec, struct devkey *k)
{
	unsigned char *pub = NULL, digest[32];
	char x[48], y[48];
	size_t n = 0;
	memset(k, 0, sizeof *k);
	k->pkey = strncmp(spec, "pkcs11:", 7) == 0 ? load_pkcs11_key(spec, &k->engine) : load_file_key(spec);
	if (!k->pkey)
		return 0;
	/* The public point, uncompressed: 0x04 || X || Y, 32 bytes each.
	 * mbedTLS: mbedtls_ecp_point_write_binary(..., MBEDTLS_ECP_PF_UNCOMPRESSED, ...)
	 * or psa_export_public_key. */
	const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(k->pkey); /* also a key the engine made */
	if (ec && EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) == NID_X9_62_prime256v1)
		n = EC_POINT_point2buf(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec), POINT_CONVERSION_UNCOMPRESSED, &pub,
				       NULL);
	if (n != 65) {
		logf_("the device key is not an ECDSA P-256 key");
		OPENSSL_free(pub);
		return 0;
	}
	b64url(pub + 1, 32, x, sizeof x);
	b64url(pub + 33, 32, y, sizeof y);
	OPENSSL_free(pub);
	/* The members RFC 7638 hashes for the thumbprint, in its order (lexicographic,
	 * no spaces); the header carries the same text (docs/devices.md's vector). */
	snprintf(k->jwk, sizeof k->jwk, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
	EVP_Digest(k->jwk, strlen(k->jwk), digest, NULL, EVP_sha256(), NULL);
	b64url(digest, sizeof digest, k->kid, sizeof k->kid);
	return 1;
}

/* The signing input of a proof, base64url(header) "." base64url(claims),
 * into out: header {"typ":"dpop+jwt","alg":"ES256","jwk":…}, claims
 * {"jti":…,"htm":…,"htu":…,"iat":…[,"nonce":…]} in that order, no spaces
 * (docs/devices.md has a vector for it). Returns its length, 0 on overflow. */
static size_t dpop_signing_input(const char *jwk, const char *jti, const char *htm, const char *htu, long long iat,
				 const char *nonce, char *out, size_t size)
{
	char header[256], claims[1536], num[32];
	size_t h;
	if ((size_t)snprintf(header, sizeof header, "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":%s}", jwk) >= sizeof header)
		return 0;
	strcpy(claims, "{\"jti\":");
	snprintf(num, sizeof num, ",\"iat\":%lld", iat);
	if (!json_put_string(claims, sizeof claims, jti) || strlen(claims) + 8 >= sizeof claims)
		return 0;
	strcat(claims, ",\"htm\":");
	if (!json_put_string(claims, sizeof claims, htm) || strlen(claims) + 8 >= sizeof claims)
		return 0;
	strcat(claims, ",\"htu\":");
	if (!json_put_string(claims, sizeof claims, htu) || strlen(claims) + strlen(num) + 12 >= sizeof claims)
		return 0;
	strcat(claims, num);
	if (nonce && *nonce) {
		strcat(claims, ",\"nonce\":");
		if (!json_put_string(claims, sizeof claims, nonce) || strlen(claims) + 2 >= sizeof claims)
			return 0;
	}
	strcat(claims, "}");
	if (!(h = b64url((unsigned char *)header, strlen(header), out, size)) || h + 2 >= size)
		return 0;
	out[h] = '.';
	size_t c = b64url((unsigned char *)claims, strlen(claims), out + h + 1, size - h - 1);
	return c ? h + 1 + c : 0;
}

/* Signs a proof for htm and htu with k into out (a compact JWS). jti and iat
 * are fresh unless given (for the test vector); the nonce is optional.
 * Returns 1 on success. */
static int dpop_proof(const struct devkey *k, const char *htm, const char *htu, const char *nonce, const char *jti_in,
		      long long iat, char *out, size_t size)
{
	unsigned char rnd[16], der[80], raw[64];
	const unsigned char *p = der;
	char jti[32];
	size_t derlen = sizeof der;
	if (!jti_in) { /* 16 random bytes; mbedTLS: mbedtls_ctr_drbg_random or psa_generate_random */
		if (RAND_bytes(rnd, sizeof rnd) != 1)
			return 0;
		b64url(rnd, sizeof rnd, jti, sizeof jti);
		jti_in = jti;
	}
	size_t n = dpop_signing_input(k->jwk, jti_in, htm, htu, iat, nonce, out, size);
	if (!n || n + 2 + 86 + 1 > size)
		return 0;
	/* ES256: ECDSA with SHA-256 over the signing input. OpenSSL returns the
	 * signature DER-encoded (an ECDSA-Sig-Value); JWS wants r and s as two
	 * 32-byte big-endian numbers, r||s (RFC 7518 section 3.4). Sending the
	 * DER is the classic mistake, and credsign refuses it (bad-signature).
	 * mbedTLS: mbedtls_ecdsa_sign gives r and s as mbedtls_mpi, written with
	 * mbedtls_mpi_write_binary(&r, raw, 32) and (&s, raw + 32, 32); or
	 * psa_sign_hash(PSA_ALG_ECDSA(PSA_ALG_SHA_256)), which returns r||s
	 * itself; mbedtls_pk_sign returns DER like OpenSSL (mbedtls_ecdsa_der_to_raw
	 * in 3.6 converts it). */
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
		 EVP_DigestSign(md, der, &derlen, (unsigned char *)out, n) == 1;
	EVP_MD_CTX_free(md);
	ECDSA_SIG *sig = ok ? d2i_ECDSA_SIG(NULL, &p, (long)derlen) : NULL;
	if (!sig) {
		ERR_clear_error();
		return 0;
	}
	const BIGNUM *r, *s;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
	ECDSA_SIG_free(sig);
	if (!ok)
		return 0;
	out[n] = '.';
	return b64url(raw, sizeof raw, out + n + 1, size - n - 1) == 86;
}

/* Remembers the DPoP-Nonce of a response header line (any response:
 * credsign sends a fresh one on every device-plane answer). */
static void dpop_note_nonce(const char *line, size_t len)
{
	if (len <= 11 || strncasecmp(line, "DPoP-Nonce:", 11) != 0)
		return;
	const char *v = line + 11;
	size_t n = len - 11;
	while (n && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n && isspace((unsigned char)v[n - 1]))
		n--;
	if (n && n < sizeof dpop_nonce) {
		memcpy(dpop_nonce, v, n);
		dpop_nonce[n] = 0;
		dpop_nonce_at = now_mono();
	}
}

/* Whether a WWW-Authenticate header line asks for a (fresh) nonce: RFC
 * 9449's use_dpop_nonce, or credsign's reasons that a nonce cures: bad-nonce
 * (it expired), stale and future (the device's clock is off; a valid nonce
 * replaces the time window). */
static int dpop_wants_nonce(const char *line, size_t len)
{
	return len > 17 && strncasecmp(line, "WWW-Authenticate:", 17) == 0 &&
	       (memmem(line, len, "use_dpop_nonce", 14) || memmem(line, len, "\"bad-nonce\"", 11) ||
		memmem(line, len, "\"stale\"", 7) || memmem(line, len, "\"future\"", 8));
}

/* ---- credsign ---- */

struct body {
	char data[65536];
	size_t len;
};

static size_t on_body(char *d, size_t size, size_t n, void *u)
{
	struct body *b = u;
	size_t len = size * n;
	if (b->len + len >= sizeof b->data)
		return 0; /* too large: abort the transfer */
	memcpy(b->data + b->len, d, len);
	b->len += len;
	b->data[b->len] = 0;
	return len;
}

/* What fetch reads from an answer's headers. */
struct answer_headers {
	double retry_after;
	int use_nonce; /* a 401 asking for a DPoP nonce */
};

static size_t on_header(char *d, size_t size, size_t n, void *u)
{
	struct answer_headers *h = u;
	if (size * n > 12 && strncasecmp(d, "Retry-After:", 12) == 0)
		h->retry_after = atof(d + 12); /* credsign sends delta seconds */
	dpop_note_nonce(d, size * n);
	h->use_nonce |= dpop_wants_nonce(d, size * n);
	return size * n;
}

static int read_token(const char *file, char *tok, size_t size)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return 0;
	size_t n = fread(tok, 1, size - 1, f);
	fclose(f);
	tok[n] = 0;
	while (n > 0 && isspace((unsigned char)tok[n - 1]))
		tok[--n] = 0;
	return n > 0;
}

/* server_offset is the server's Unix time minus now_mono(), as the last
 * credentials' issuedAt showed it (have_offset once known): token times are
 * the server's, and a device whose wall clock is wrong still rotates on time. */
static double server_offset;
static int have_offset;

/* The DPoP request header for a POST to url, with the last nonce if it is
 * recent. */
static int dpop_header(const char *url, char *out, size_t size)
{
	static const char name[] = "DPoP: ";
	memcpy(out, name, sizeof name);
	const char *nonce = now_mono() - dpop_nonce_at < DPOP_NONCE_MAX_AGE ? dpop_nonce : NULL;
	if (!dpop_proof(&devkey, "POST", url, nonce, NULL, (long long)time(NULL), out + sizeof name - 1,
			size - sizeof name + 1)) {
		logf_("cannot sign a DPoP proof with the device key");
		ERR_clear_error();
		return 0;
	}
	return 1;
}


/* POST req to path with the request header auth (the device token's
 * Authorization, or a DPoP proof); the answer in b, what its headers say in
 * ah. */
static CURLcode post_json(const struct config *cfg, const char *path, const char *auth, const char *req,
			  struct body *b, long *status, struct answer_headers *ah)
{
	char url[1024];
	*status = 0;
	memset(ah, 0, sizeof *ah);
	snprintf(url, sizeof url, "%s%s", cfg->server, path);
	CURL *h = curl_easy_init();
	struct curl_slist *hd = curl_slist_append(NULL, auth);
	hd = curl_slist_append(hd, "Content-Type: application/json");
	b->len = 0;
	b->data[0] = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, ah);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (cfg->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	return rc;
}

/* POST /v1/devices/{id}/credentials with the device token, or with a DPoP
 * proof signed by the device key (CREDSIGN_KEY). */
static int fetch(const struct config *cfg, struct creds *c, double *retry_after)
{
	static struct body b;
	char tok[512], auth[2048], url[1024], path[512], req[64], issued[64], refresh[64], expires[64];
	struct answer_headers ah;
	int nonce_retry = 0;
	long status;
	CURLcode rc;
	*retry_after = 0;
	snprintf(path, sizeof path, "/v1/devices/%s/credentials", cfg->device);
	snprintf(url, sizeof url, "%s%s", cfg->server, path);
	snprintf(req, sizeof req, cfg->ttl > 0 ? "{\"ttlSeconds\":%ld}" : "{}", cfg->ttl);
again:
	if (devkey.pkey) {
		if (!dpop_header(url, auth, sizeof auth))
			return FETCH_RETRY;
	} else {
		if (!read_token(cfg->token_file, tok, sizeof tok)) {
			logf_("cannot read the device token file");
			return FETCH_RETRY; /* it may be written or rotated in place */
		}
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
		explicit_bzero(tok, sizeof tok);
	}
	rc = post_json(cfg, path, auth, req, &b, &status, &ah);
	explicit_bzero(auth, sizeof auth);
	*retry_after = ah.retry_after;
	if (rc == CURLE_OK && status == 401 && devkey.pkey && ah.use_nonce && !nonce_retry++) {
		logf_("credsign asks for a fresh DPoP nonce; signing again with it");
		goto again; /* once: a second refusal is logged below */
	}
	if (rc != CURLE_OK) {
		logf_("cannot reach credsign: %s", curl_easy_strerror(rc));
		return FETCH_RETRY;
	}
	if (status != 200) {
		char title[256] = "", detail[512] = "", reason[64] = "";
		json_get(b.data, "title", title, sizeof title); /* RFC 9457 problem */
		json_get(b.data, "detail", detail, sizeof detail);
		json_get(b.data, "reason", reason, sizeof reason); /* why a DPoP proof was refused */
		logf_("credsign answered %ld %s: %s%s%s", status, title, detail, *reason ? " reason " : "", reason);
		return status >= 400 && status < 500 && status != 408 && status != 429 ? FETCH_PERMANENT : FETCH_RETRY;
	}
	double now = now_mono(), ti, tr, te = 0;
	char port[16], tls[8], enforced[8];
	int has_exp = json_get(b.data, "expiresAt", expires, sizeof expires) && strcmp(expires, "null") != 0;
	int ok = json_get(b.data, "cloud", c->cloud, sizeof c->cloud) &&
		 json_get(b.data, "deviceId", c->device, sizeof c->device) &&
		 json_get(b.data, "clientId", c->client_id, sizeof c->client_id) &&
		 json_get(b.data, "username", c->username, sizeof c->username) &&
		 json_get(b.data, "password", c->password, sizeof c->password) &&
		 json_get(b.data, "host", c->host, sizeof c->host) && json_get(b.data, "port", port, sizeof port) &&
		 json_get(b.data, "tls", tls, sizeof tls) && json_get(b.data, "expiryEnforced", enforced, sizeof enforced) &&
		 json_get(b.data, "issuedAt", issued, sizeof issued) && parse_time(issued, &ti) &&
		 json_get(b.data, "refreshAfter", refresh, sizeof refresh) && parse_time(refresh, &tr) &&
		 (!has_exp || parse_time(expires, &te));
	const char *topics = json_find(b.data, "topics");
	c->telemetry[0] = c->commands[0] = 0;
	if (ok && topics && *topics == '{') { /* both optional: the settings may name them */
		json_get(topics, "telemetry", c->telemetry, sizeof c->telemetry);
		json_get(topics, "commands", c->commands, sizeof c->commands);
	}
	c->port = ok ? atol(port) : 0;
	if (c->port <= 0 || c->port > 65535) {
		explicit_bzero(&b, sizeof b);
		logf_("credsign sent credentials this client cannot read");
		return FETCH_RETRY;
	}
	explicit_bzero(&b, sizeof b);
	/* Deadlines are durations after issuedAt on the monotonic clock, so a
	 * device whose wall clock is wrong still refreshes on time. Jitter: up to
	 * a quarter of the shorter of refreshAfter - issuedAt and expiresAt -
	 * refreshAfter, so a fleet does not refresh in lockstep. */
	c->tls = !strcmp(tls, "true");
	c->enforced = has_exp && !strcmp(enforced, "true");
	double window = (has_exp && te - tr < tr - ti ? te - tr : tr - ti) / 4;
	c->refresh_at = now + (tr - ti) + uniform(0, window > 0 ? window : 0);
	c->expires_at = has_exp ? now + (te - ti) : 0;
	server_offset = ti - now;
	have_offset = 1;
	logf_("fetched credentials: %s device %s at %s:%ld tls=%d, client id %s, refresh in %.1fs, enforced expiry %s",
	      c->cloud, c->device, c->host, c->port, c->tls, c->client_id, c->refresh_at - now, c->enforced ? "yes" : "no");
	return FETCH_OK;
}

static int expired(const struct creds *c) { return c->enforced && now_mono() >= c->expires_at; }

/* Whether b is somewhere else than a: another cloud, broker or topics. */
static int moved(const struct creds *a, const struct creds *b)
{
	return strcmp(a->cloud, b->cloud) || strcmp(a->host, b->host) || a->port != b->port || a->tls != b->tls ||
	       strcmp(a->telemetry, b->telemetry) || strcmp(a->commands, b->commands);
}

/* ---- MQTT ---- */

/* Connects with c; returns the CONNACK code (4, 5: refused) or a negative
 * Paho error; *out is set on success. One client per triple: the ClientId
 * may change with every fetch. */
static int mqtt_connect(const struct config *cfg, const struct creds *c, MQTTClient *out)
{
	char uri[300];
	MQTTClient m;
	snprintf(uri, sizeof uri, "%s://%s:%ld", c->tls ? "ssl" : "tcp", c->host, c->port);
	int rc = MQTTClient_create(&m, uri, c->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != MQTTCLIENT_SUCCESS)
		return rc;
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	MQTTClient_SSLOptions s = MQTTClient_SSLOptions_initializer;
	o.keepAliveInterval = 60;
	o.cleansession = 1;
	o.connectTimeout = 30;
	o.MQTTVersion = MQTTVERSION_3_1_1; /* no silent retry as MQTT 3.1 after a refusal */
	o.username = c->username;
	o.password = c->password;
	if (c->tls) {
		s.trustStore = cfg->broker_ca_file; /* NULL: the system's default CA paths */
		s.enableServerCertAuth = 1;
		s.verify = 1; /* check the host name too */
		s.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
		o.ssl = &s;
	}
	rc = MQTTClient_connect(m, &o);
	if (rc != MQTTCLIENT_SUCCESS) {
		MQTTClient_destroy(&m);
		return rc;
	}
	const char *commands = cfg->commands_topic && *cfg->commands_topic ? cfg->commands_topic : c->commands;
	if (*commands && MQTTClient_subscribe(m, commands, 1) != MQTTCLIENT_SUCCESS)
		logf_("the broker refused the subscription to %s", commands);
	*out = m;
	return 0;
}

static void mqtt_close(MQTTClient *m)
{
	if (*m) {
		MQTTClient_disconnect(*m, 1000);
		MQTTClient_destroy(m);
		*m = NULL;
	}
}

/* token_life reads when a token minted with a lifetime
 * (csd_3.<id>.<device>.<minted ns>.<expires ns>.<MAC>) was minted and
 * expires, in Unix seconds; 0 for any other token. */
static int token_life(const char *tok, double *minted, double *expires)
{
	if (strncmp(tok, "csd_3.", 6) != 0)
		return 0;
	const char *f[6] = {tok + 6};
	int n = 1;
	for (const char *p = tok + 6; *p && n < 6; p++)
		if (*p == '.')
			f[n++] = p + 1;
	if (n != 5 || strchr(f[4], '.'))
		return 0;
	char *end;
	long long m = strtoll(f[2], &end, 10);
	if (*end != '.')
		return 0;
	long long e = strtoll(f[3], &end, 10);
	if (*end != '.' || e <= m)
		return 0;
	*minted = m / 1e9;
	*expires = e / 1e9;
	return 1;
}

/* replace_file replaces path with data, mode 0600, all or nothing: a
 * temporary file in the same directory, written and synced, renamed over
 * path, then the directory synced. */
static int replace_file(const char *path, const char *data)
{
	char tmp[1100], dir[1100];
	snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	else
		snprintf(dir, sizeof dir, ".");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	size_t len = strlen(data);
	int ok = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return 0;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 1;
}

/* rotate_step exchanges a device token that has a lifetime for a new one at
 * two thirds of its life (POST /v1/devices/{id}/tokens/rotate, the token its
 * only credential) and writes it to the token file with replace_file. */
static void rotate_step(const struct config *cfg)
{
	static double next_try;
	static int failures;
	static struct body b;
	double mono = now_mono();
	if (!have_offset || mono < next_try)
		return;
	double now = mono + server_offset, minted, expires, retry_after;
	next_try = mono + 60;
	char tok[512], path[512], fresh[512];
	if (!read_token(cfg->token_file, tok, sizeof tok) || !token_life(tok, &minted, &expires)) {
		explicit_bzero(tok, sizeof tok);
		return;
	}
	double at = minted + (expires - minted) * 2 / 3;
	if (now < at) {
		explicit_bzero(tok, sizeof tok);
		if (at - now < 60)
			next_try = mono + (at - now);
		return;
	}
	snprintf(path, sizeof path, "/v1/devices/%s/tokens/rotate", cfg->device);
	char auth[600];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
	explicit_bzero(tok, sizeof tok);
	long status;
	struct answer_headers ah;
	CURLcode rc = post_json(cfg, path, auth, "{}", &b, &status, &ah);
	explicit_bzero(auth, sizeof auth);
	retry_after = ah.retry_after;
	int got = rc == CURLE_OK && status == 201 && json_get(b.data, "token", fresh, sizeof fresh - 1) &&
		  strncmp(fresh, "csd_", 4) == 0;
	if (got) {
		strcat(fresh, "\n");
		got = replace_file(cfg->token_file, fresh);
		if (!got)
			logf_("cannot write the rotated device token to its file; re-enrol if the old one stops working");
	}
	explicit_bzero(fresh, sizeof fresh);
	if (got) {
		explicit_bzero(&b, sizeof b);
		failures = 0;
		logf_("rotated the device token");
		return;
	}
	if (rc != CURLE_OK) {
		logf_("device token rotation: cannot reach credsign: %s", curl_easy_strerror(rc));
	} else if (status != 201) {
		char title[256] = "", detail[512] = "";
		json_get(b.data, "title", title, sizeof title);
		json_get(b.data, "detail", detail, sizeof detail);
		logf_("device token rotation: credsign answered %ld %s: %s", status, title, detail);
		if (status >= 400 && status < 500 && status != 408 && status != 429) {
			/* Expired, revoked or rotated already: only re-enrolment helps. */
			logf_("the device token cannot be rotated: re-enrol the device");
			next_try = mono + 3600;
			explicit_bzero(&b, sizeof b);
			return;
		}
	}
	explicit_bzero(&b, sizeof b);
	double d = backoff(failures++, retry_after);
	next_try = mono + d;
	logf_("device token rotation failed; retrying in %.1fs", d);
}

static int run(const struct config *cfg)
{
	struct creds creds, fresh;
	int have = 0, sent = 0;
	int fetch_failures = 0; /* credsign failures in a row; reset by a successful fetch */
	int conn_failures = 0;  /* broker failures in a row; reset by a connection up for 30 s */
	MQTTClient m = NULL;
	double next_pub = now_mono(), connected_at = 0, retry_after;
	for (;;) {
		rotate_step(cfg);
		double now = now_mono();
		if (m && now - connected_at >= 30)
			conn_failures = 0;
		if (!have || expired(&creds) || now >= creds.refresh_at) {
			int r = fetch(cfg, &fresh, &retry_after);
			if (r == FETCH_PERMANENT) {
				logf_("this will not change by retrying, stopping");
				mqtt_close(&m);
				return 3;
			}
			if (r == FETCH_RETRY) {
				double d = backoff(fetch_failures++, retry_after);
				if (!have || expired(&creds)) {
					logf_("retrying in %.1fs", d);
					sleep_s(d);
				} else { /* the current triple still works: keep it */
					creds.refresh_at = now + d;
					logf_("staying connected, retrying in %.1fs", d);
				}
				continue;
			}
			fetch_failures = 0;
			if (m && have && moved(&creds, &fresh)) {
				logf_("the device moved to %s at %s:%ld; reconnecting", fresh.cloud, fresh.host, fresh.port);
				mqtt_close(&m);
			} else if (m && creds.enforced) {
				logf_("reconnecting with fresh credentials before the old ones expire");
				mqtt_close(&m);
			}
			creds = fresh;
			explicit_bzero(&fresh, sizeof fresh);
			have = 1;
		}
		if (!m) {
			int rc = mqtt_connect(cfg, &creds, &m);
			if (rc != 0) {
				double d = backoff(conn_failures++, 0);
				if (rc == 4 || rc == 5) {
					have = 0; /* refused: ask credsign again, the device may have been fixed */
					logf_("broker refused the credentials (CONNACK %d); retrying in %.1fs", rc, d);
				} else {
					logf_("cannot connect to %s:%ld (paho %d); retrying in %.1fs", creds.host, creds.port, rc, d);
				}
				sleep_s(d);
				continue;
			}
			connected_at = now_mono();
			logf_("connected to %s:%ld", creds.host, creds.port);
		}
		const char *topic = cfg->topic && *cfg->topic ? cfg->topic : creds.telemetry;
		if (!*topic) {
			logf_("the credentials name no telemetry topic; set CREDSIGN_TOPIC");
			mqtt_close(&m);
			return 2;
		}
		char *in_topic = NULL;
		int in_len = 0;
		MQTTClient_message *in = NULL;
		/* keep-alive and incoming packets, for up to 50 ms */
		if (MQTTClient_receive(m, &in_topic, &in_len, &in, 50) >= 0 && in) {
			logf_("received a message on %s (%d bytes)", in_topic, in->payloadlen);
			MQTTClient_freeMessage(&in);
			MQTTClient_free(in_topic);
		}
		int ok = MQTTClient_isConnected(m);
		if (ok && now >= next_pub) {
			char msg[300];
			MQTTClient_deliveryToken dt;
			MQTTClient_message pm = MQTTClient_message_initializer;
			snprintf(msg, sizeof msg, "message %d from %s", sent + 1, cfg->device);
			pm.payload = msg;
			pm.payloadlen = (int)strlen(msg);
			pm.qos = 1;
			ok = MQTTClient_publishMessage(m, topic, &pm, &dt) == MQTTCLIENT_SUCCESS &&
			     MQTTClient_waitForCompletion(m, dt, 30000L) == MQTTCLIENT_SUCCESS;
			if (ok) {
				logf_("published message %d to %s", ++sent, topic);
				next_pub = now + cfg->interval;
			}
		}
		if (!ok) {
			mqtt_close(&m);
			double d = backoff(conn_failures++, 0);
			logf_("connection lost; reconnecting in %.1fs", d);
			sleep_s(d);
			continue;
		}
	}
}

/* Plain http:// is for loopback only. */
static int loopback(const char *url)
{
	const char *hosts[] = {"http://127.0.0.1", "http://localhost", "http://[::1]"};
	for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
		size_t n = strlen(hosts[i]);
		if (!strncmp(url, hosts[i], n) && (url[n] == 0 || url[n] == ':' || url[n] == '/'))
			return 1;
	}
	return 0;
}

/* POST /v1/enrol with the enrolment token (CREDSIGN_ENROLMENT_TOKEN_FILE)
 * and a proof by the device key: credsign creates the device in the token's
 * group and binds the key to it; no device token is issued. Returns an exit
 * status (0 enrolled, 3 refused, 1 otherwise). */
static int enrol(const struct config *cfg)
{
	static struct body b;
	char tok[512], auth[600], proof[2048], url[1024], req[600] = "{\"deviceId\":", kid[64] = "";
	const char *file = getenv("CREDSIGN_ENROLMENT_TOKEN_FILE");
	struct answer_headers ah;
	long status = 0;
	int nonce_retry = 0;
	CURLcode rc;
	if (!file || !*file || !cfg->server || !cfg->device) {
		logf_("enrol needs CREDSIGN_SERVER, CREDSIGN_DEVICE, CREDSIGN_KEY and CREDSIGN_ENROLMENT_TOKEN_FILE");
		return 2;
	}
	if (strncmp(cfg->server, "https://", 8) != 0 && !loopback(cfg->server)) {
		logf_("CREDSIGN_SERVER must be https:// (plain http only on loopback)");
		return 2;
	}
	if (!json_put_string(req, sizeof req - 1, cfg->device))
		return 2;
	strcat(req, "}");
	snprintf(url, sizeof url, "%s/v1/enrol", cfg->server);
	do {
		memset(&ah, 0, sizeof ah);
		if (!read_token(file, tok, sizeof tok)) {
			logf_("cannot read the enrolment token file");
			return 1;
		}
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
		explicit_bzero(tok, sizeof tok);
		if (!dpop_header(url, proof, sizeof proof))
			return 1;
		CURL *h = curl_easy_init();
		struct curl_slist *hd = curl_slist_append(NULL, auth);
		explicit_bzero(auth, sizeof auth);
		hd = curl_slist_append(hd, proof);
		hd = curl_slist_append(hd, "Content-Type: application/json");
		b.len = 0;
		b.data[0] = 0;
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, &ah);
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
		curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
		if (cfg->ca_file)
			curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_slist_free_all(hd);
		curl_easy_cleanup(h);
	} while (rc == CURLE_OK && status == 401 && ah.use_nonce && !nonce_retry++);
	if (rc != CURLE_OK) {
		logf_("cannot reach credsign: %s", curl_easy_strerror(rc));
		return 1;
	}
	if (status != 201) {
		char title[256] = "", detail[512] = "", reason[64] = "";
		json_get(b.data, "title", title, sizeof title);
		json_get(b.data, "detail", detail, sizeof detail);
		json_get(b.data, "reason", reason, sizeof reason);
		logf_("credsign answered %ld %s: %s%s%s", status, title, detail, *reason ? " reason " : "", reason);
		return status >= 400 && status < 500 && status != 408 && status != 429 ? 3 : 1;
	}
	int has_token = json_find(b.data, "token") != NULL;
	json_get(b.data, "keyId", kid, sizeof kid);
	explicit_bzero(&b, sizeof b);
	if (has_token || strcmp(kid, devkey.kid) != 0) { /* a server that does not bind keys at enrolment */
		logf_("credsign enrolled %s but did not bind this key (it issued a device token instead)", cfg->device);
		return 1;
	}
	logf_("enrolled %s with device key %s", cfg->device, kid);
	return 0;
}

/* The commands besides running: "jwk" prints the body that binds the
 * device key (POST /v1/devices/{id}/keys); "enrol" enrols the device with
 * it (see enrol); "proof METHOD URL [IAT JTI
 * [NONCE]]" prints a proof, e.g. for curl's DPoP header or to check the
 * docs' vector. Both use CREDSIGN_KEY. Returns an exit status. */
static int key_command(const struct config *cfg, int argc, char **argv)
{
	char proof[2048];
	const char *spec = getenv("CREDSIGN_KEY");
	int is_proof = !strcmp(argv[1], "proof"), is_enrol = !strcmp(argv[1], "enrol");
	if ((is_proof && (argc < 4 || argc == 5 || argc > 7)) ||
	    (!is_proof && ((strcmp(argv[1], "jwk") && !is_enrol) || argc != 2))) {
		logf_("usage: credsign-client [jwk | enrol | proof METHOD URL [IAT JTI [NONCE]]]");
		return 2;
	}
	if (!spec || !*spec) {
		logf_("set CREDSIGN_KEY (a PEM key file or a pkcs11: URI)");
		return 2;
	}
	if (!key_load(spec, &devkey))
		return 2;
	logf_("device key %s", devkey.kid);
	if (is_enrol) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		int rc = enrol(cfg);
		curl_global_cleanup();
		return rc;
	}
	if (!is_proof) {
		printf("{\"jwk\":%s}\n", devkey.jwk);
		return 0;
	}
	if (!dpop_proof(&devkey, argv[2], argv[3], argc == 7 ? argv[6] : NULL, argc >= 6 ? argv[5] : NULL,
			argc >= 6 ? atoll(argv[4]) : (long long)time(NULL), proof, sizeof proof)) {
		logf_("cannot sign a DPoP proof with the device key");
		return 1;
	}
	puts(proof);
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg = {getenv("CREDSIGN_SERVER"), getenv("CREDSIGN_DEVICE"), getenv("CREDSIGN_TOKEN_FILE"),
			     getenv("CREDSIGN_CA_FILE"), getenv("CREDSIGN_BROKER_CA_FILE"), getenv("CREDSIGN_TOPIC"),
			     getenv("CREDSIGN_COMMANDS_TOPIC"), 0, 10};
	const char *ttl = getenv("CREDSIGN_TTL"), *iv = getenv("CREDSIGN_INTERVAL"), *key = getenv("CREDSIGN_KEY");
	if (argc > 1)
		return key_command(&cfg, argc, argv);
	if (!cfg.server || !cfg.device || (!cfg.token_file && !(key && *key))) {
		logf_("set CREDSIGN_SERVER, CREDSIGN_DEVICE and CREDSIGN_TOKEN_FILE or CREDSIGN_KEY");
		return 2;
	}
	if (strncmp(cfg.server, "https://", 8) != 0 && !loopback(cfg.server)) {
		logf_("CREDSIGN_SERVER must be https:// (plain http only on loopback)");
		return 2;
	}
	if (ttl && *ttl)
		cfg.ttl = atol(ttl);
	if (iv && *iv)
		cfg.interval = atof(iv);
	if (cfg.ttl < 0 || cfg.interval <= 0) {
		logf_("CREDSIGN_TTL and CREDSIGN_INTERVAL must be positive numbers");
		return 2;
	}
	if (key && *key) { /* a device key replaces the token: proofs, no Authorization header */
		if (!key_load(key, &devkey))
			return 2;
		logf_("signing requests with device key %s", devkey.kid);
	}
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = run(&cfg);
	curl_global_cleanup();
	return rc;
}
