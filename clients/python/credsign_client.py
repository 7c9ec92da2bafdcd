#!/usr/bin/env python3
"""credsign device client: Python 3, paho-mqtt (1.x or 2.x) and urllib.

Fetches short-lived MQTT credentials from credsign with the device token,
connects to the cloud's broker, publishes a message every CREDSIGN_INTERVAL
seconds to the credentials' telemetry topic and listens on their commands
topic, refreshes at refreshAfter (plus jitter), reconnects before an
enforced expiry or when the device moved (cloud, host, port or topics
changed), backs off on failures (honouring Retry-After), and stops on a
permanent refusal. A device token minted with a lifetime is rotated at two
thirds of it and the new one written to the token file atomically.
docs/devices.md is the protocol it follows.

Settings (environment):
  CREDSIGN_SERVER          credsign base URL (https://…; http:// on loopback)
  CREDSIGN_DEVICE          device id the token is bound to
  CREDSIGN_TOKEN_FILE      file holding the device token (re-read at every fetch,
                           replaced when the token is rotated: its directory
                           must be writable)
  CREDSIGN_CA_FILE         optional PEM trusted for credsign besides system roots
  CREDSIGN_BROKER_CA_FILE  optional PEM trusted for the broker besides system roots
  CREDSIGN_TTL             optional lifetime to ask for, in seconds
  CREDSIGN_TOPIC           optional topic to publish to (QoS 1) instead of the
                           credentials' telemetry topic
  CREDSIGN_COMMANDS_TOPIC  optional topic filter to subscribe to instead of the
                           credentials' commands topic
  CREDSIGN_INTERVAL        seconds between messages (default 10)
  CREDSIGN_KEY             instead of CREDSIGN_TOKEN_FILE: a PEM file (mode 0600)
                           holding the device's ECDSA P-256 key; each request
                           then carries a DPoP proof signed with it and no token

Commands (with CREDSIGN_KEY; they need the `cryptography` package):
  keygen                   create the key file if absent (0600) and print the
                           body that binds it: POST /v1/devices/{id}/keys
  jwk                      print that body for an existing key
  enrol                    enrol CREDSIGN_DEVICE with the enrolment token in
                           CREDSIGN_ENROLMENT_TOKEN_FILE, binding the key (no
                           device token is issued)
  proof METHOD URL [IAT JTI [NONCE]]
                           print a DPoP proof (for curl, or the docs' vector)

Exit status: 2 bad settings, 3 credsign refused the device for good
(401/403/404 or another 4xx); otherwise it runs until killed. Logs go to
stderr and never hold the token or the password.
"""
import base64
import hashlib
import json
import os
import random
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import paho.mqtt.client as mqtt

BACKOFF_INITIAL, BACKOFF_MAX = 1.0, 120.0
STABLE_AFTER = 30.0  # a connection up this long starts the broker back-off over


def log(msg):
    print("credsign-client: " + msg, file=sys.stderr, flush=True)


class Permanent(Exception):
    """credsign refused the device; asking again will not help."""


class Retry(Exception):
    """A failure worth retrying; after is the server's Retry-After (seconds)."""

    def __init__(self, msg, after=0.0):
        super().__init__(msg)
        self.after = after


def parse_time(s):
    """RFC 3339 UTC time ("2026-11-23T19:38:04.514154053Z") to Unix seconds."""
    if s is None:
        return None
    date, clock = s.rstrip("Z").split("T")
    y, mo, d = (int(x) for x in date.split("-"))
    hms, _, frac = clock.partition(".")
    h, mi, sec = (int(x) for x in hms.split(":"))
    # Days from 1970-01-01 to y-mo-d (proleptic Gregorian).
    y -= mo <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + h * 3600 + mi * 60 + sec + (float("0." + frac) if frac else 0.0)


class Creds:
    """A triple plus its deadlines on this device's monotonic clock.

    Deadlines are durations from issuedAt, so a device whose own clock is
    wrong (no RTC, no NTP yet) still refreshes on time."""

    def __init__(self, c):
        now = time.monotonic()
        issued = parse_time(c["issuedAt"])
        self.c = c
        refresh = parse_time(c["refreshAfter"]) - issued
        expires = parse_time(c.get("expiresAt"))
        # Jitter: up to a quarter of the shorter of refreshAfter - issuedAt and
        # expiresAt - refreshAfter, so a fleet does not refresh in lockstep.
        window = min(refresh, expires - issued - refresh) / 4 if expires else refresh / 4
        self.refresh_at = now + refresh + random.uniform(0, max(window, 0))
        self.expires_at = now + (expires - issued) if expires else None
        self.enforced = bool(c.get("expiryEnforced")) and expires is not None
        topics = c.get("topics") or {}
        self.telemetry = topics.get("telemetry") or ""
        self.commands = topics.get("commands") or ""

    def where(self):
        """What a session depends on besides the triple: a change is a move."""
        c = self.c
        return (c["cloud"], c["host"], c["port"], c["tls"], self.telemetry, self.commands)

    def expired(self):
        return self.enforced and time.monotonic() >= self.expires_at

    def describe(self):
        c = self.c
        exp = "never" if self.expires_at is None else "in %.1fs%s" % (
            self.expires_at - time.monotonic(), "" if self.enforced else " (not enforced)")
        return "%s device %s at %s:%d tls=%s, client id %s, refresh in %.1fs, expires %s" % (
            c["cloud"], c["deviceId"], c["host"], c["port"], c["tls"], c["clientId"],
            self.refresh_at - time.monotonic(), exp)


def tls_context(ca_file):
    ctx = ssl.create_default_context()  # system roots, hostname check, TLS 1.2+
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """credsign never redirects; following one would send the token elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def read_token(cfg):
    try:
        with open(cfg["token_file"]) as f:  # re-read: a rotated token is picked up
            return f.read().strip()
    except OSError as e:
        raise Retry("cannot read the device token file: %s" % e.strerror)


def call(cfg, path, auth, body, nonce_retry=False):
    """POST body (JSON) to path with the request's credential auth (the
    device token's Authorization header, or a DPoP proof); the answer's JSON.
    With nonce_retry, a 401 asking for a fresh DPoP nonce raises
    NonceRequired."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    headers.update(auth)
    req = urllib.request.Request(
        cfg["server"].rstrip("/") + path, data=json.dumps(body).encode(), method="POST", headers=headers)
    ctx = tls_context(cfg["ca_file"]) if cfg["server"].startswith("https:") else None
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=30) as r:
            note_nonce(cfg, r.headers)
            return json.load(r)
    except urllib.error.HTTPError as e:
        status, after = e.code, e.headers.get("Retry-After", "")
        note_nonce(cfg, e.headers)
        if status == 401 and cfg.get("key") and nonce_retry and wants_nonce(e.headers):
            raise NonceRequired()
        try:
            p = json.load(e)  # RFC 9457 problem: title and detail, never a secret
            why = "%s: %s" % (p.get("title", ""), p.get("detail", ""))
            if p.get("reason"):  # why a DPoP proof was refused
                why += " reason " + str(p["reason"])
        except ValueError:
            why = e.reason
        msg = "credsign answered %d %s" % (status, why)
        if 400 <= status < 500 and status not in (408, 429):
            raise Permanent(msg)
        raise Retry(msg, float(after) if after.isdigit() else 0.0)
    except (OSError, ValueError) as e:  # network, TLS, bad JSON
        raise Retry("cannot reach credsign: %s" % (getattr(e, "reason", None) or type(e).__name__))


# ---- the device key and its DPoP proofs (docs/devices.md) ----
#
# With CREDSIGN_KEY the client holds an ECDSA P-256 key instead of a bearer
# token and authenticates each credentials request with a fresh DPoP proof
# (RFC 9449 section 4, used without an access token): a compact JWS whose
# header carries the public key and whose claims bind it to the method, the
# URL, the time and the server's nonce, signed ES256.


def b64url(b):
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def compact_json(obj):
    """JSON as the proof carries it: members in the order given, no spaces."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class DeviceKey:
    """An ECDSA P-256 private key read from a PEM file that only its owner may read."""

    def __init__(self, path, create=False):
        # Imported here: bearer-token mode does not need the package.
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, utils
        self._hashes, self._ec, self._utils = hashes, ec, utils
        if create and not os.path.exists(path):
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        fd = os.open(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            if os.fstat(f.fileno()).st_mode & 0o077:
                raise ValueError("the device key file may be read by others; chmod 600 it")
            key = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the device key is not an ECDSA P-256 key")
        self.key = key
        pub = key.public_key().public_numbers()
        x, y = b64url(pub.x.to_bytes(32, "big")), b64url(pub.y.to_bytes(32, "big"))
        # The public JWK with the members RFC 7638 hashes for the thumbprint,
        # in its order (lexicographic, no spaces); the header carries the same
        # text (docs/devices.md's vector).
        self.jwk = {"crv": "P-256", "kty": "EC", "x": x, "y": y}
        self.kid = b64url(hashlib.sha256(compact_json(self.jwk).encode()).digest())

    def signing_input(self, htm, htu, iat, jti, nonce=None):
        """base64url(header) "." base64url(claims), as docs/devices.md's vector has it."""
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk}
        claims = {"jti": jti, "htm": htm, "htu": htu, "iat": iat}
        if nonce:
            claims["nonce"] = nonce
        return b64url(compact_json(header).encode()) + "." + b64url(compact_json(claims).encode())

    def proof(self, htm, htu, nonce=None, iat=None, jti=None):
        """A signed proof; jti (16 random bytes) and iat (now) unless given."""
        si = self.signing_input(htm, htu, int(time.time()) if iat is None else iat,
                                jti or b64url(os.urandom(16)), nonce)
        der = self.key.sign(si.encode(), self._ec.ECDSA(self._hashes.SHA256()))
        # The library returns DER (an ECDSA-Sig-Value); JWS wants r||s, two
        # 32-byte big-endian numbers (RFC 7518 section 3.4).
        r, s = self._utils.decode_dss_signature(der)
        return si + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


# How long a nonce is worth sending: credsign's stay valid for 5 minutes. An
# older one would be refused (bad-nonce); without one, a server that wants
# nonces answers use_dpop_nonce with a fresh one.
NONCE_MAX_AGE = 240.0


def note_nonce(cfg, headers):
    """Keeps the DPoP-Nonce of an answer (credsign sends one on each)."""
    if headers.get("DPoP-Nonce"):
        cfg["nonce"], cfg["nonce_at"] = headers["DPoP-Nonce"], time.monotonic()


def auth_headers(cfg, url):
    """The request's credential: a DPoP proof with the device key, or the token."""
    if cfg.get("key"):
        fresh = cfg.get("nonce") and time.monotonic() - cfg["nonce_at"] < NONCE_MAX_AGE
        return {"DPoP": cfg["key"].proof("POST", url, cfg["nonce"] if fresh else None)}
    return {"Authorization": "Bearer " + read_token(cfg)}


def fetch(cfg):
    """POST /v1/devices/{id}/credentials with the device token or a DPoP proof."""
    try:
        return fetch_once(cfg)
    except NonceRequired:  # credsign wants a nonce it has just sent: once more with it
        log("credsign asks for a fresh DPoP nonce; signing again with it")
        return fetch_once(cfg, nonce_retry=False)


class NonceRequired(Exception):
    """A 401 whose WWW-Authenticate asks for a fresh nonce: RFC 9449's
    use_dpop_nonce, or credsign's reasons that a nonce cures: bad-nonce (it
    expired), stale and future (the device's clock is off; a valid nonce
    replaces the time window)."""


def wants_nonce(headers):
    challenge = " ".join(headers.get_all("WWW-Authenticate") or [])
    return "use_dpop_nonce" in challenge or any('"%s"' % r in challenge for r in ("bad-nonce", "stale", "future"))


def fetch_once(cfg, nonce_retry=True):
    body = {"ttlSeconds": cfg["ttl"]} if cfg["ttl"] else {}
    path = "/v1/devices/%s/credentials" % cfg["device"]
    c = call(cfg, path, auth_headers(cfg, cfg["server"].rstrip("/") + path), body, nonce_retry)
    try:
        return Creds(c)
    except (KeyError, TypeError, ValueError) as e:
        raise Retry("credsign answered credentials this client cannot read: %s" % type(e).__name__)


def token_life(token):
    """(minted, expires) in Unix seconds of a token minted with a lifetime
    (csd_3.<id>.<device>.<minted ns>.<expires ns>.<MAC>), else None."""
    if not token.startswith("csd_3."):
        return None
    p = token[6:].split(".")
    try:
        m, e = int(p[2]), int(p[3])
    except (IndexError, ValueError):
        return None
    return (m / 1e9, e / 1e9) if len(p) == 5 and e > m else None


def replace_file(path, data):
    """Replace path with data, mode 0600, all or nothing: a temporary file in
    the same directory, written and synced, renamed over path, then the
    directory synced."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, ".%s.tmp-%d" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Rotation:
    """Exchanges a device token that has a lifetime for a new one at two
    thirds of its life (POST /v1/devices/{id}/tokens/rotate, the token its
    only credential) and writes the new one to the token file atomically.
    The token carries the server's Unix times: they are compared with the
    server's clock as the last credentials' issuedAt showed it (offset), so
    a device whose own clock is wrong still rotates on time."""

    def __init__(self):
        self.next_try, self.failures, self.offset = 0.0, 0, 0.0

    def step(self, cfg):
        local = time.time()
        if local < self.next_try:
            return
        now = local + self.offset  # the server's time
        self.next_try = local + 60
        try:
            token = read_token(cfg)
        except Retry:
            return
        life = token_life(token)
        if life is None:
            return
        at = life[0] + (life[1] - life[0]) * 2 / 3
        if now < at:
            self.next_try = min(self.next_try, local + at - now)
            return
        try:
            new = call(cfg, "/v1/devices/%s/tokens/rotate" % cfg["device"], {"Authorization": "Bearer " + token}, {}).get("token", "")
            if not new.startswith("csd_"):
                raise Retry("credsign answered no token")
            replace_file(cfg["token_file"], new + "\n")
        except Permanent as e:
            # Expired, revoked or rotated already: only re-enrolment helps.
            log("%s; the device token cannot be rotated: re-enrol the device" % e)
            self.next_try = local + 3600
            return
        except (Retry, OSError) as e:
            d = backoff(self.failures, getattr(e, "after", 0.0))
            self.failures += 1
            self.next_try = local + d
            log("device token rotation failed: %s; retrying in %.1fs" % (e, d))
            return
        self.failures = 0
        log("rotated the device token (the new one expires in %.0fs)" % ((token_life(new) or (0, now))[1] - now))


def backoff(failures, after=0.0):
    """Exponential back-off with jitter in [d/2, d], or Retry-After when longer."""
    d = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** failures)
    return max(random.uniform(d / 2, d), after)


class Session:
    """One paho client for one triple (the ClientId may change per triple)."""

    def __init__(self, cfg, creds):
        c = creds.c
        if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2.x
            self.m = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=c["clientId"],
                                 protocol=mqtt.MQTTv311, clean_session=True)
        else:  # paho-mqtt 1.x (Debian bookworm: 1.6.1)
            self.m = mqtt.Client(client_id=c["clientId"], protocol=mqtt.MQTTv311, clean_session=True)
        self.m.username_pw_set(c["username"], c["password"])
        if c["tls"]:
            self.m.tls_set_context(tls_context(cfg["broker_ca_file"]))
        self.rc, self.lost = None, False
        self.m.on_connect = self._on_connect
        self.m.on_disconnect = self._on_disconnect
        self.m.on_message = self._on_message
        self.commands = cfg["commands_topic"] or creds.commands
        self.m.connect(c["host"], c["port"], keepalive=60)  # raises OSError, ssl.SSLError
        self.m.loop_start()
        deadline = time.monotonic() + 30
        while self.rc is None and not self.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.rc != 0:
            self.close()
            code = getattr(self.rc, "value", self.rc)
            if code in (4, 5, 134, 135):  # bad user name or password / not authorized
                raise PermissionError("broker refused the credentials (CONNACK %s)" % code)
            raise ConnectionError("no CONNACK (%s)" % code)

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        if rc == 0 and self.commands:
            client.subscribe(self.commands, qos=1)
        self.rc = rc

    def _on_message(self, client, userdata, msg):
        log("received a message on %s (%d bytes)" % (msg.topic, len(msg.payload)))

    def _on_disconnect(self, client, userdata, *args):
        self.lost = True

    def publish(self, topic, payload):
        info = self.m.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError("publish failed (rc %d)" % info.rc)
        info.wait_for_publish(timeout=30)
        if not info.is_published():
            raise ConnectionError("no PUBACK")

    def close(self):
        self.m.disconnect()
        self.m.loop_stop()


def run(cfg):
    creds, session = None, None
    fetch_failures = 0  # credsign failures in a row; reset by a successful fetch
    conn_failures = 0   # broker failures in a row; reset by a connection up for 30 s
    sent, next_pub, connected_at = 0, time.monotonic(), 0.0
    rotation = Rotation()
    while True:
        rotation.step(cfg)
        now = time.monotonic()
        if session and now - connected_at >= STABLE_AFTER:
            conn_failures = 0
        if creds is None or creds.expired() or now >= creds.refresh_at:
            try:
                fresh = fetch(cfg)
            except Permanent as e:
                log("%s; this will not change by retrying, stopping" % e)
                if session:
                    session.close()
                return 3
            except Retry as e:
                d = backoff(fetch_failures, e.after)
                fetch_failures += 1
                if creds is None or creds.expired():
                    log("%s; retrying in %.1fs" % (e, d))
                    time.sleep(d)
                else:  # the current triple still works: keep it, try again later
                    creds.refresh_at = now + d
                    log("%s; staying connected, retrying in %.1fs" % (e, d))
                continue
            log("fetched credentials: " + fresh.describe())
            rotation.offset = parse_time(fresh.c["issuedAt"]) - time.time()
            fetch_failures = 0
            if session and (creds.enforced or creds.where() != fresh.where()):
                if creds.where() != fresh.where():
                    log("the device moved to %s at %s:%d; reconnecting" % (fresh.c["cloud"], fresh.c["host"], fresh.c["port"]))
                else:
                    # Reconnect with the fresh triple before the old one lapses.
                    log("reconnecting with fresh credentials before the old ones expire")
                session.close()
                session = None
            creds = fresh
        topic = cfg["topic"] or creds.telemetry
        if not topic:
            log("the credentials name no telemetry topic; set CREDSIGN_TOPIC")
            return 2
        if session is None:
            try:
                session = Session(cfg, creds)
                connected_at = time.monotonic()
                log("connected to %s:%d" % (creds.c["host"], creds.c["port"]))
            except (OSError, ConnectionError) as e:
                d = backoff(conn_failures)
                conn_failures += 1
                if isinstance(e, PermissionError):
                    creds = None  # refused: ask credsign again, the device may have been fixed there
                    log("%s; retrying in %.1fs" % (e, d))
                else:
                    log("cannot connect to %s:%d: %s; retrying in %.1fs" % (
                        creds.c["host"], creds.c["port"], type(e).__name__, d))
                time.sleep(d)
                continue
        if now >= next_pub:
            try:
                if session.lost:
                    raise ConnectionError("connection lost")
                session.publish(topic, "message %d from %s" % (sent + 1, cfg["device"]))
                sent += 1
                log("published message %d to %s" % (sent, topic))
                next_pub = now + cfg["interval"]
            except (OSError, ConnectionError, RuntimeError, ValueError) as e:
                session.close()
                session = None
                d = backoff(conn_failures)
                conn_failures += 1
                log("%s; reconnecting in %.1fs" % (e, d))
                time.sleep(d)
                continue
        time.sleep(0.05)


def enrol(key):
    """POST /v1/enrol with the enrolment token (CREDSIGN_ENROLMENT_TOKEN_FILE)
    and a proof by the device key: credsign creates the device in the token's
    group and binds the key to it; no device token is issued. Returns an exit
    status (0 enrolled, 3 refused, 1 otherwise)."""
    env = os.environ.get
    server, device, token_file = env("CREDSIGN_SERVER", ""), env("CREDSIGN_DEVICE", ""), env("CREDSIGN_ENROLMENT_TOKEN_FILE", "")
    if not (server and device and token_file):
        log("enrol needs CREDSIGN_SERVER, CREDSIGN_DEVICE, CREDSIGN_KEY and CREDSIGN_ENROLMENT_TOKEN_FILE")
        return 2
    u = urllib.parse.urlsplit(server)
    if u.scheme != "https" and not (u.scheme == "http" and u.hostname in ("localhost", "127.0.0.1", "::1")):
        log("CREDSIGN_SERVER must be https:// (plain http only on loopback)")
        return 2
    url = server.rstrip("/") + "/v1/enrol"
    ctx = tls_context(env("CREDSIGN_CA_FILE")) if u.scheme == "https" else None
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    cfg = {"key": key}
    for retry in (True, False):
        try:
            with open(token_file) as f:
                token = f.read().strip()
        except OSError as e:
            log("cannot read the enrolment token file: %s" % e.strerror)
            return 1
        headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json", "Accept": "application/json"}
        headers.update(auth_headers(cfg, url))
        req = urllib.request.Request(url, data=json.dumps({"deviceId": device}).encode(), method="POST", headers=headers)
        try:
            with opener.open(req, timeout=30) as r:
                answer = json.load(r)
            break
        except urllib.error.HTTPError as e:
            note_nonce(cfg, e.headers)
            if e.code == 401 and retry and wants_nonce(e.headers):
                continue
            try:
                p = json.load(e)
                why = "%s: %s%s" % (p.get("title", ""), p.get("detail", ""),
                                    " reason " + str(p["reason"]) if p.get("reason") else "")
            except ValueError:
                why = e.reason
            log("credsign answered %d %s" % (e.code, why))
            return 3 if 400 <= e.code < 500 and e.code not in (408, 429) else 1
        except (OSError, ValueError) as e:
            log("cannot reach credsign: %s" % (getattr(e, "reason", None) or type(e).__name__))
            return 1
    if "token" in answer or answer.get("keyId") != key.kid:  # a server that does not bind keys at enrolment
        log("credsign enrolled %s but did not bind this key (it issued a device token instead)" % device)
        return 1
    log("enrolled %s with device key %s" % (device, key.kid))
    return 0


def key_command(args):
    """keygen, jwk or proof (see the module's doc); returns an exit status."""
    path = os.environ.get("CREDSIGN_KEY", "")
    if not path:
        log("set CREDSIGN_KEY (the device key's PEM file)")
        return 2
    if not ((args[0] in ("keygen", "jwk", "enrol") and len(args) == 1) or (args[0] == "proof" and len(args) in (3, 5, 6))):
        log("usage: credsign_client.py [keygen | jwk | enrol | proof METHOD URL [IAT JTI [NONCE]]]")
        return 2
    try:
        key = DeviceKey(path, create=args[0] == "keygen")
    except (OSError, ValueError, ImportError) as e:
        log("cannot use the device key: %s" % (getattr(e, "strerror", None) or e))
        return 2
    log("device key %s" % key.kid)
    if args[0] == "enrol":
        return enrol(key)
    if args[0] == "proof":
        iat, jti = (int(args[3]), args[4]) if len(args) > 3 else (None, None)
        print(key.proof(args[1], args[2], args[5] if len(args) > 5 else None, iat, jti))
    else:
        print(compact_json({"jwk": key.jwk}))
    return 0


def main():
    if len(sys.argv) > 1:
        return key_command(sys.argv[1:])
    env = os.environ.get
    try:
        cfg = {"server": env("CREDSIGN_SERVER", ""), "device": env("CREDSIGN_DEVICE", ""),
               "token_file": env("CREDSIGN_TOKEN_FILE", ""), "ca_file": env("CREDSIGN_CA_FILE"),
               "broker_ca_file": env("CREDSIGN_BROKER_CA_FILE"), "ttl": int(env("CREDSIGN_TTL") or 0),
               "topic": env("CREDSIGN_TOPIC", ""), "commands_topic": env("CREDSIGN_COMMANDS_TOPIC", ""),
               "interval": float(env("CREDSIGN_INTERVAL") or 10)}
    except ValueError:
        log("CREDSIGN_TTL and CREDSIGN_INTERVAL must be numbers")
        return 2
    key = env("CREDSIGN_KEY")
    if key:  # a device key replaces the token: proofs, no Authorization header
        try:
            cfg["key"] = DeviceKey(key)
        except (OSError, ValueError, ImportError) as e:
            log("cannot use the device key: %s" % (getattr(e, "strerror", None) or e))
            return 2
        log("signing requests with device key %s" % cfg["key"].kid)
    missing = [k for k in ("server", "device", "token_file") if not cfg[k] and not (k == "token_file" and key)]
    if missing:
        log("missing settings: " + ", ".join("CREDSIGN_" + k.upper() for k in missing))
        return 2
    u = urllib.parse.urlsplit(cfg["server"])
    if u.scheme != "https" and not (u.scheme == "http" and u.hostname in ("localhost", "127.0.0.1", "::1")):
        log("CREDSIGN_SERVER must be https:// (plain http only on loopback)")
        return 2
    try:
        return run(cfg)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
