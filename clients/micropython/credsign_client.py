# credsign device client for MicroPython: socket + tls (HTTPS to credsign) and
# micropython-lib's umqtt.simple (1.4.0 and later).
#
# Fetches short-lived MQTT credentials from credsign with the device token,
# connects to the cloud's broker, publishes a message every `interval`
# seconds to the credentials' telemetry topic and listens on their commands
# topic, refreshes at refreshAfter (plus jitter), reconnects before an
# enforced expiry or when the device moved (cloud, host, port or topics
# changed), backs off on failures (honouring Retry-After), and stops on a
# permanent refusal. A device token minted with a lifetime is rotated at two
# thirds of it and the new one written over the token file (a temporary file
# beside it, renamed), by credsign_rotate.py (copy it beside this file; it is
# imported only for such a token). docs/devices.md is the protocol it follows.
#
# Settings: a JSON file (path in sys.argv[1], default "credsign.json"):
#   {"server": "https://credsign.example", "device": "lamp-7",
#    "token_file": "device.token", "ca_file": "credsign-ca.pem",
#    "broker_ca_file": "broker-ca.pem", "ttl": 0, "interval": 10}
# and optionally "topic" / "commands_topic" (instead of the credentials'
# telemetry and commands topics) and "timeout" (seconds each network step
# may take, default 20). MicroPython has no root store: an https:// server
# needs ca_file and a TLS broker needs broker_ca_file, and a port whose ssl
# cannot verify certificates (ESP8266's axTLS) is refused (status 2): the
# token and the password go only to a verified peer.
# The token lives in its own file, never in the settings or the source.
# run() returns 2 on bad settings and 3 when credsign refused the device for
# good (401/403/404 or another 4xx); otherwise it runs until reset. Nothing
# it prints holds the token or the password.
#
# Time is kept in integer milliseconds (time.ticks_ms): boards with 32-bit
# floats (ESP32, ESP8266, RP2, most STM32) cannot hold a Unix time to better
# than 128 s in a float.
import gc
import json
import random
import socket
import sys
from time import sleep_ms, ticks_add, ticks_diff, ticks_ms

from umqtt.simple import MQTTClient, MQTTException

BACKOFF_INITIAL_MS, BACKOFF_MAX_MS = 1000, 120000
STABLE_AFTER_MS = 30000  # a connection up this long starts the broker back-off over
MAX_WAIT_MS = 86400000  # deadlines further out are cut to a day (ticks_ms wraps after 12.4 days)
MAX_BODY = 4096  # credsign's answers are about 1 KB


def log(msg):
    print("credsign-client: " + msg)


def why(e):
    """An exception as a short line (its type and the first line of its text)."""
    s = str(e).strip().split("\n")[0][:100]
    return type(e).__name__ + (": " + s if s else "")


def parse_ms(s):
    """RFC 3339 UTC time ("2026-11-23T19:38:04.514154053Z") to Unix milliseconds, an int."""
    date, clock = s.rstrip("Z").split("T")
    y, mo, d = [int(x) for x in date.split("-")]
    hms = clock.split(".")
    h, mi, sec = [int(x) for x in hms[0].split(":")]
    frac = int((hms[1] + "000")[:3]) if len(hms) > 1 else 0
    y -= 1 if mo <= 2 else 0  # days from 1970-01-01 (proleptic Gregorian)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac


def rand(n):
    """A random int in [0, n) for n up to 2**30."""
    return random.getrandbits(30) % n if n > 0 else 0


class Creds:
    """A triple plus its deadlines in ticks_ms, from durations after issuedAt:
    a module with no RTC (or before NTP) still refreshes on time."""

    def __init__(self, c):
        now = ticks_ms()
        issued = parse_ms(c["issuedAt"])
        refresh = parse_ms(c["refreshAfter"]) - issued
        window = refresh // 4  # jitter, as in docs/devices.md
        life = None
        if c.get("expiresAt"):
            life = parse_ms(c["expiresAt"]) - issued
            window = min(window, (life - refresh) // 4)
        topics = c.get("topics") or {}
        self.c = c
        self.telemetry = topics.get("telemetry") or ""
        self.commands = topics.get("commands") or ""
        self.refresh_at = ticks_add(now, min(refresh + rand(window), MAX_WAIT_MS))
        self.enforced = bool(c.get("expiryEnforced")) and life is not None
        self.expires_at = ticks_add(now, min(life, MAX_WAIT_MS)) if self.enforced else now

    def due(self):
        return ticks_diff(ticks_ms(), self.refresh_at) >= 0

    def expired(self):
        return self.enforced and ticks_diff(ticks_ms(), self.expires_at) >= 0

    def where(self):
        """What a session depends on besides the triple: a change is a move."""
        c = self.c
        return (c["cloud"], c["host"], c["port"], c["tls"], self.telemetry, self.commands)


class Permanent(Exception):
    pass


class Retry(Exception):
    def __init__(self, msg, after_ms=0):
        super().__init__(msg)
        self.after_ms = after_ms


def tls_context(ca_file):
    """An SSLContext that verifies the peer's chain against ca_file and its
    host name, or None on a port whose ssl cannot (no SSLContext or no
    CERT_REQUIRED: ESP8266's axTLS)."""
    try:
        import tls
    except ImportError:  # MicroPython before 1.23
        try:
            import ssl as tls
        except ImportError:
            return None
    if not (hasattr(tls, "SSLContext") and hasattr(tls, "CERT_REQUIRED")):
        return None
    with open(ca_file, "rb") as f:
        ca = f.read()
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    try:
        ctx.load_verify_locations(ca)  # tls (C) takes the data, positionally
    except TypeError:
        ctx.load_verify_locations(cadata=ca)  # micropython-lib ssl.py
    return ctx


class Sock:
    """A socket whose every blocking read and write times out and whose
    reads return all the bytes asked for or raise OSError: umqtt.simple
    makes its socket blocking without a timeout after each read and indexes
    short reads (IndexError on a broker that closes before CONNACK)."""

    def __init__(self, s, raw, timeout):
        self.s, self.raw, self.t, self.blocking = s, raw, timeout, True
        raw.settimeout(timeout)  # a TLS socket reads through it (and has no settimeout)

    def setblocking(self, flag):
        self.blocking = flag
        self.s.setblocking(flag)
        if flag:
            self.raw.settimeout(self.t)

    def read(self, n):
        b = self.s.read(n)
        if not self.blocking:
            return b  # None: nothing yet; b"": closed (umqtt raises OSError)
        while True:
            if not b:
                raise OSError(104)  # ECONNRESET: closed mid-packet
            if len(b) >= n:
                return b
            more = self.s.read(n - len(b))
            b = b + more if more else more

    def readline(self):
        line = self.s.readline()
        if not line:
            raise OSError(104)
        return line

    def write(self, b, n=None):
        self.s.write(memoryview(b)[:n] if n is not None else b)

    def close(self):
        self.s.close()


class Wrap:
    """Passed to umqtt.simple as ssl=: its connect() calls wrap_socket on the
    connected socket in every release from 1.4.0 (1.4.0-1.5.0 refuse
    ssl_params); this adds TLS (when ctx is set) and the timeouts."""

    def __init__(self, ctx, timeout):
        self.ctx, self.t = ctx, timeout

    def wrap_socket(self, s, server_hostname=None):
        s.settimeout(self.t)
        t = self.ctx.wrap_socket(s, server_hostname=server_hostname) if self.ctx else s
        return Sock(t, s, self.t)


def post(url, body, headers, ctx, timeout):
    """POST over one connection, no redirects: (status, headers, body).
    Raises OSError, ValueError (TLS or a malformed answer) or Retry."""
    proto, _, hostport, path = url.split("/", 3)
    host, port = hostport, 443 if proto == "https:" else 80
    if ":" in hostport.lstrip("[").split("]")[-1]:
        host, port = hostport.rsplit(":", 1)
        port = int(port)
    host = host.strip("[]")
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = raw = socket.socket(ai[0], socket.SOCK_STREAM, ai[2])
    try:
        raw.settimeout(timeout)
        raw.connect(ai[-1])
        if ctx:
            s = ctx.wrap_socket(raw, server_hostname=host)
        s = Sock(s, raw, timeout)
        req = "POST /%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n" % (path, hostport, len(body))
        for k in headers:
            req += k + ": " + headers[k] + "\r\n"
        s.write((req + "\r\n" + body).encode())
        req = None
        line = s.readline().split(None, 2)
        if len(line) < 2 or not line[0].startswith(b"HTTP/"):
            raise Retry("credsign's answer is not HTTP")
        status, hdrs, length, chunked = int(line[1]), {}, -1, False
        while True:
            line = s.readline()
            if line == b"\r\n":
                break
            k, _, v = line.decode().partition(":")
            k, v = k.strip().lower(), v.strip()
            hdrs[k] = v
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding":
                chunked = "chunked" in v.lower()
        if length > MAX_BODY:
            raise Retry("credsign's answer is too large (%d bytes)" % length)
        if chunked:
            data = b""
            while True:
                n = int(s.readline().split(b";")[0], 16)
                if n == 0:
                    break
                if len(data) + n > MAX_BODY:
                    raise Retry("credsign's answer is too large")
                data += s.read(n)
                s.readline()
        elif length >= 0:
            data = s.read(length) if length else b""
        else:  # until the server closes (we asked for Connection: close)
            data = b""
            while len(data) <= MAX_BODY:
                more = s.s.read(512)
                if not more:
                    break
                data += more
            if len(data) > MAX_BODY:
                raise Retry("credsign's answer is too large")
        return status, hdrs, data
    finally:
        s.close()


def read_token(cfg):
    try:
        with open(cfg["token_file"]) as f:  # re-read: a rotated token is picked up
            return f.read().strip()
    except OSError:
        raise Retry("cannot read the device token file")


def call(cfg, ctx, path, token, body, ok):
    """POST body to path with the device token: the answer's body when its
    status is ok, else Permanent (a 4xx but 408 and 429) or Retry."""
    url = cfg["server"].rstrip("/") + path
    try:
        status, hdrs, data = post(url, body, {"Authorization": "Bearer " + token,
                                              "Content-Type": "application/json", "Accept": "application/json"},
                                  ctx, cfg["timeout"])
    except Retry:
        raise
    except Exception as e:  # OSError, TLS (ValueError), MemoryError, a malformed answer
        raise Retry("cannot reach credsign: " + why(e))
    if status == ok:
        return data
    try:
        p = json.loads(data)  # RFC 9457 problem: title and detail, never a secret
        msg = "%s: %s" % (p.get("title", ""), p.get("detail", ""))
    except Exception:
        msg = ""
    msg = "credsign answered %d %s" % (status, msg)
    if 400 <= status < 500 and status not in (408, 429):
        raise Permanent(msg)
    after = hdrs.get("retry-after", "")
    raise Retry(msg, int(after) * 1000 if after.isdigit() else 0)


def fetch(cfg, ctx):
    """POST /v1/devices/{id}/credentials with the device token."""
    body = json.dumps({"ttlSeconds": cfg["ttl"]}) if cfg.get("ttl") else "{}"
    data = call(cfg, ctx, "/v1/devices/" + cfg["device"] + "/credentials", read_token(cfg), body, 200)
    try:
        return Creds(json.loads(data))
    except Exception as e:
        raise Retry("credsign's answer is not credentials: " + why(e))


def backoff_ms(failures, after_ms=0):
    d = min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS << min(failures, 20))
    return max(d // 2 + rand(d // 2 + 1), after_ms)


def connect(cfg, creds, broker_ctx, on_msg):
    """One MQTTClient per triple; raises MQTTException(4 or 5) on refusal."""
    c = creds.c
    m = MQTTClient(c["clientId"], c["host"], port=c["port"], user=c["username"],
                   password=c["password"], keepalive=60, ssl=Wrap(broker_ctx if c["tls"] else None, cfg["timeout"]))
    try:
        m.connect(clean_session=True)
        commands = cfg.get("commands_topic") or creds.commands
        if commands:
            m.set_callback(on_msg)
            m.subscribe(commands, qos=1)
    except BaseException:
        close(m)
        raise
    return m


def close(mq):
    try:
        mq.disconnect()
    except Exception:
        pass  # the connection was already gone
    try:
        mq.sock.close()
    except Exception:
        pass


def plain_http_ok(url):
    """Plain http:// is for loopback only."""
    for host in ("localhost", "127.0.0.1", "[::1]"):
        p = "http://" + host
        if url.startswith(p) and url[len(p):len(p) + 1] in ("", ":", "/"):
            return True
    return False


def on_msg(topic, msg):
    log("received a message on %s (%d bytes)" % (topic.decode(), len(msg)))


def run(cfg):
    for k in ("server", "device", "token_file"):
        if not cfg.get(k):
            log("missing setting: " + k)
            return 2
    cfg["timeout"] = cfg.get("timeout") or 20
    ctx = broker_ctx = None
    if cfg["server"].startswith("https://"):
        if not cfg.get("ca_file"):
            log("ca_file is required for an https:// server: MicroPython has no root store")
            return 2
        ctx = tls_context(cfg["ca_file"])
        if ctx is None:
            log("this port's ssl cannot verify certificates; it cannot talk to credsign safely")
            return 2
    elif not plain_http_ok(cfg["server"]):
        log("server must be https:// (plain http only on loopback)")
        return 2
    if cfg.get("broker_ca_file"):
        broker_ctx = tls_context(cfg["broker_ca_file"])
        if broker_ctx is None:
            log("this port's ssl cannot verify certificates; broker_ca_file cannot be used")
            return 2
    creds, mq, sent = None, None, 0
    fetch_failures = 0  # credsign failures in a row; reset by a successful fetch
    conn_failures = 0   # broker failures in a row; reset by a connection up for 30 s
    next_pub = last_io = connected_at = ticks_ms()
    interval_ms = int(cfg.get("interval", 10) * 1000)
    rotation = None  # set for a token with a lifetime
    while True:
        if rotation:
            rotation.step(cfg, ctx)
        if mq and ticks_diff(ticks_ms(), connected_at) >= STABLE_AFTER_MS:
            conn_failures = 0
        if creds is None or creds.expired() or creds.due():
            try:
                fresh = fetch(cfg, ctx)
            except Permanent as e:
                log("%s; this will not change by retrying, stopping" % e)
                if mq:
                    close(mq)
                return 3
            except Retry as e:
                d = backoff_ms(fetch_failures, e.after_ms)
                fetch_failures += 1
                if creds is None or creds.expired():
                    log("%s; retrying in %dms" % (e, d))
                    gc.collect()
                    sleep_ms(d)
                else:  # the current triple still works: keep it, try again later
                    creds.refresh_at = ticks_add(ticks_ms(), d)
                    log("%s; staying connected, retrying in %dms" % (e, d))
                continue
            c = fresh.c
            log("fetched credentials: %s device %s at %s:%d tls=%s, client id %s, enforced expiry %s" % (
                c["cloud"], c["deviceId"], c["host"], c["port"], c["tls"], c["clientId"], fresh.enforced))
            if c["tls"] and broker_ctx is None:
                log("the broker needs TLS and broker_ca_file is not set: MicroPython has no root store to verify it with")
                if mq:
                    close(mq)
                return 2
            fetch_failures = 0
            if rotation is None and read_token(cfg).startswith("csd_3."):
                # Only a token with a lifetime needs it: a board whose tokens
                # never expire neither compiles nor keeps that code.
                import credsign_rotate

                rotation = credsign_rotate.Rotation(globals())
            if rotation:
                rotation.saw(parse_ms(c["issuedAt"]))
            if mq and (creds.enforced or creds.where() != fresh.where()):
                if creds.where() != fresh.where():
                    log("the device moved to %s at %s:%d; reconnecting" % (c["cloud"], c["host"], c["port"]))
                else:
                    log("reconnecting with fresh credentials before the old ones expire")
                close(mq)
                mq = None
            creds = fresh
        topic = cfg.get("topic") or creds.telemetry
        if not topic:
            log("the credentials name no telemetry topic and the settings none either")
            return 2
        if mq is None:
            try:
                mq = connect(cfg, creds, broker_ctx, on_msg)
                last_io = connected_at = ticks_ms()
                log("connected to %s:%d" % (creds.c["host"], creds.c["port"]))
            except MQTTException as e:
                d = backoff_ms(conn_failures)
                conn_failures += 1
                if e.args and e.args[0] in (4, 5):
                    creds = None  # refused: ask credsign again, the device may have been fixed
                    log("broker refused the credentials (CONNACK %s); retrying in %dms" % (e.args[0], d))
                else:
                    log("broker refused (%s); retrying in %dms" % (why(e), d))
                sleep_ms(d)
                continue
            except Exception as e:  # OSError, TLS (ValueError), a malformed answer, MemoryError
                mq = None
                d = backoff_ms(conn_failures)
                conn_failures += 1
                log("cannot connect to %s:%d: %s; retrying in %dms" % (creds.c["host"], creds.c["port"], why(e), d))
                gc.collect()
                sleep_ms(d)
                continue
        try:
            mq.check_msg()  # raises OSError when the broker closed the connection
            if ticks_diff(ticks_ms(), next_pub) >= 0:
                mq.publish(topic, "message %d from %s" % (sent + 1, cfg["device"]), qos=1)
                sent += 1
                log("published message %d to %s" % (sent, topic))
                last_io = ticks_ms()
                next_pub = ticks_add(last_io, interval_ms)
            elif ticks_diff(ticks_ms(), last_io) >= 30000:  # keep-alive is 60 s
                mq.ping()
                last_io = ticks_ms()
        except Exception as e:  # OSError (closed, timed out), a malformed packet, MemoryError
            close(mq)
            mq = None
            d = backoff_ms(conn_failures)
            conn_failures += 1
            log("connection lost (%s); reconnecting in %dms" % (why(e), d))
            gc.collect()
            sleep_ms(d)
            continue
        sleep_ms(50)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "credsign.json"
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        log("cannot read the settings %s: %s" % (path, why(e)))
        return 2
    try:
        return run(cfg)
    except MemoryError:  # while setting up (the loop itself backs off)
        log("not enough memory to start")
        return 1


if __name__ == "__main__":
    sys.exit(main())
