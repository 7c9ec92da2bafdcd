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
 * Build: cc -O2 -Wall -o credsign-client credsign_client.c -lcurl -lpaho-mqtt3cs
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <curl/curl.h>

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

static size_t on_header(char *d, size_t size, size_t n, void *u)
{
	if (size * n > 12 && strncasecmp(d, "Retry-After:", 12) == 0)
		*(double *)u = atof(d + 12); /* credsign sends delta seconds */
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

/* POST req to path with the device token tok; the answer in b. */
static CURLcode post_json(const struct config *cfg, const char *path, const char *tok, const char *req,
			  struct body *b, long *status, double *retry_after)
{
	char auth[600], url[1024];
	*retry_after = 0;
	*status = 0;
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
	snprintf(url, sizeof url, "%s%s", cfg->server, path);
	CURL *h = curl_easy_init();
	struct curl_slist *hd = curl_slist_append(NULL, auth);
	explicit_bzero(auth, sizeof auth);
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
	curl_easy_setopt(h, CURLOPT_HEADERDATA, retry_after);
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

/* POST /v1/devices/{id}/credentials with the device token. */
static int fetch(const struct config *cfg, struct creds *c, double *retry_after)
{
	static struct body b;
	char tok[512], path[512], req[64], issued[64], refresh[64], expires[64];
	*retry_after = 0;
	if (!read_token(cfg->token_file, tok, sizeof tok)) {
		logf_("cannot read the device token file");
		return FETCH_RETRY; /* it may be written or rotated in place */
	}
	snprintf(path, sizeof path, "/v1/devices/%s/credentials", cfg->device);
	snprintf(req, sizeof req, cfg->ttl > 0 ? "{\"ttlSeconds\":%ld}" : "{}", cfg->ttl);
	long status;
	CURLcode rc = post_json(cfg, path, tok, req, &b, &status, retry_after);
	explicit_bzero(tok, sizeof tok);
	if (rc != CURLE_OK) {
		logf_("cannot reach credsign: %s", curl_easy_strerror(rc));
		return FETCH_RETRY;
	}
	if (status != 200) {
		char title[256] = "", detail[512] = "";
		json_get(b.data, "title", title, sizeof title); /* RFC 9457 problem */
		json_get(b.data, "detail", detail, sizeof detail);
		logf_("credsign answered %ld %s: %s", status, title, detail);
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
	long status;
	CURLcode rc = post_json(cfg, path, tok, "{}", &b, &status, &retry_after);
	explicit_bzero(tok, sizeof tok);
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

int main(void)
{
	struct config cfg = {getenv("CREDSIGN_SERVER"), getenv("CREDSIGN_DEVICE"), getenv("CREDSIGN_TOKEN_FILE"),
			     getenv("CREDSIGN_CA_FILE"), getenv("CREDSIGN_BROKER_CA_FILE"), getenv("CREDSIGN_TOPIC"),
			     getenv("CREDSIGN_COMMANDS_TOPIC"), 0, 10};
	const char *ttl = getenv("CREDSIGN_TTL"), *iv = getenv("CREDSIGN_INTERVAL");
	if (!cfg.server || !cfg.device || !cfg.token_file) {
		logf_("set CREDSIGN_SERVER, CREDSIGN_DEVICE and CREDSIGN_TOKEN_FILE");
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
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = run(&cfg);
	curl_global_cleanup();
	return rc;
}
