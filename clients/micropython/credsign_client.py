# credsign device client for MicroPython and QuecPython: urequests + umqtt.simple.
#
# Fetches short-lived MQTT credentials from credsign with the device token,
# connects to the cloud's broker, publishes a message every `interval`
# seconds, refreshes at refreshAfter (plus jitter), reconnects before an
# enforced expiry, backs off on failures (honouring Retry-After), and stops
# on a permanent refusal. docs/devices.md is the protocol it follows.
#
# Settings: a JSON file (path in sys.argv[1], default "credsign.json"):
#   {"server": "https://credsign.example", "device": "lamp-7",
#    "token_file": "device.token", "broker_ca_file": "broker-ca.der",
#    "ttl": 0, "topic": "devices/lamp-7/messages/events/", "interval": 10}
# The token lives in its own file, never in the settings or the source.
# run() returns 3 when credsign refused the device for good (401/403/404 or
# another 4xx); otherwise it runs until reset. Nothing it prints holds the
# token or the password.
import json
import random
import sys
import time

import urequests
from umqtt.simple import MQTTClient, MQTTException

try:
    from time import ticks_add, ticks_diff, ticks_ms, sleep_ms
except ImportError:  # CPython, where the tests run this file
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_add(a, b):
        return a + b

    def ticks_diff(a, b):
        return a - b

    def sleep_ms(ms):
        time.sleep(ms / 1000)

BACKOFF_INITIAL_MS, BACKOFF_MAX_MS = 1000, 120000
STABLE_AFTER_MS = 30000  # a connection up this long starts the broker back-off over


def log(msg):
    print("credsign-client: " + msg)


def parse_time(s):
    """RFC 3339 UTC time ("2026-11-23T19:38:04.514154053Z") to Unix seconds."""
    if s is None:
        return None
    date, clock = s.rstrip("Z").split("T")
    y, mo, d = [int(x) for x in date.split("-")]
    hms = clock.split(".")
    h, mi, sec = [int(x) for x in hms[0].split(":")]
    frac = float("0." + hms[1]) if len(hms) > 1 else 0.0
    y -= 1 if mo <= 2 else 0  # days from 1970-01-01 (proleptic Gregorian)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + h * 3600 + mi * 60 + sec + frac


def rand(n):
    """A random int in [0, n) for n up to 2**30 (MicroPython has getrandbits)."""
    return random.getrandbits(30) % n if n > 0 else 0


class Creds:
    """A triple plus its deadlines in ticks_ms, from durations after issuedAt:
    a module with no RTC (or before NTP) still refreshes on time."""

    def __init__(self, c):
        now = ticks_ms()
        issued = parse_time(c["issuedAt"])
        expires = parse_time(c.get("expiresAt"))
        refresh_ms = int((parse_time(c["refreshAfter"]) - issued) * 1000)
        window = refresh_ms // 4  # jitter, as in docs/devices.md
        if expires:
            window = min(window, (int((expires - issued) * 1000) - refresh_ms) // 4)
        self.c = c
        self.refresh_at = ticks_add(now, refresh_ms + rand(window))
        self.expires_at = ticks_add(now, int((expires - issued) * 1000)) if expires else None
        self.enforced = bool(c.get("expiryEnforced")) and expires is not None

    def due(self):
        return ticks_diff(ticks_ms(), self.refresh_at) >= 0

    def expired(self):
        return self.enforced and ticks_diff(ticks_ms(), self.expires_at) >= 0


class Permanent(Exception):
    pass


class Retry(Exception):
    def __init__(self, msg, after_ms=0):
        super().__init__(msg)
        self.after_ms = after_ms


def header(resp, name):
    for k, v in (getattr(resp, "headers", None) or {}).items():
        if k.lower() == name.lower():
            return v
    return ""


def fetch(cfg):
    """POST /v1/devices/{id}/credentials with the device token."""
    try:
        with open(cfg["token_file"]) as f:  # re-read: a rotated token is picked up
            token = f.read().strip()
    except OSError:
        raise Retry("cannot read the device token file")
    body = {"ttlSeconds": cfg["ttl"]} if cfg.get("ttl") else {}
    url = cfg["server"].rstrip("/") + "/v1/devices/" + cfg["device"] + "/credentials"
    try:
        r = urequests.post(url, data=json.dumps(body), headers={
            "Authorization": "Bearer " + token, "Content-Type": "application/json"})
    except OSError as e:
        raise Retry("cannot reach credsign: OSError %s" % (e.args[0] if e.args else ""))
    try:
        if r.status_code == 200:
            return Creds(r.json())
        try:
            p = r.json()  # RFC 9457 problem: title and detail, never a secret
            why = "%s: %s" % (p.get("title", ""), p.get("detail", ""))
        except ValueError:
            why = ""
        msg = "credsign answered %d %s" % (r.status_code, why)
        if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
            raise Permanent(msg)
        after = header(r, "Retry-After")
        raise Retry(msg, int(after) * 1000 if after.isdigit() else 0)
    finally:
        r.close()


def backoff_ms(failures, after_ms=0):
    d = min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS << min(failures, 20))
    return max(d // 2 + rand(d // 2 + 1), after_ms)


def connect(cfg, creds):
    """One MQTTClient per triple; raises MQTTException(4 or 5) on refusal."""
    c = creds.c
    ssl_params = {"server_hostname": c["host"]}
    if cfg.get("broker_ca_file"):
        import ssl
        with open(cfg["broker_ca_file"], "rb") as f:
            ssl_params.update(cert_reqs=ssl.CERT_REQUIRED, cadata=f.read())
    # Classic umqtt.simple (and QuecPython umqtt) signature; micropython-lib
    # umqtt.simple >= 1.4 takes ssl=SSLContext instead of ssl_params.
    m = MQTTClient(c["clientId"], c["host"], port=c["port"], user=c["username"],
                   password=c["password"], keepalive=60, ssl=c["tls"], ssl_params=ssl_params)
    m.connect(clean_session=True)
    return m


def close(mq):
    try:
        mq.disconnect()
    except OSError:
        pass  # the connection was already gone


def plain_http_ok(url):
    """Plain http:// is for loopback only."""
    for host in ("localhost", "127.0.0.1", "[::1]"):
        p = "http://" + host
        if url.startswith(p) and url[len(p):len(p) + 1] in ("", ":", "/"):
            return True
    return False


def run(cfg):
    if not (cfg["server"].startswith("https://") or plain_http_ok(cfg["server"])):
        log("server must be https:// (plain http only on loopback)")
        return 2
    creds, mq, sent = None, None, 0
    fetch_failures = 0  # credsign failures in a row; reset by a successful fetch
    conn_failures = 0   # broker failures in a row; reset by a connection up for 30 s
    next_pub = last_io = connected_at = ticks_ms()
    interval_ms = int(cfg.get("interval", 10) * 1000)
    while True:
        if mq and ticks_diff(ticks_ms(), connected_at) >= STABLE_AFTER_MS:
            conn_failures = 0
        if creds is None or creds.expired() or creds.due():
            try:
                fresh = fetch(cfg)
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
                    sleep_ms(d)
                else:  # the current triple still works: keep it, try again later
                    creds.refresh_at = ticks_add(ticks_ms(), d)
                    log("%s; staying connected, retrying in %dms" % (e, d))
                continue
            log("fetched credentials: %s device %s at %s:%d, client id %s, enforced expiry %s" % (
                fresh.c["cloud"], fresh.c["deviceId"], fresh.c["host"], fresh.c["port"],
                fresh.c["clientId"], fresh.enforced))
            fetch_failures = 0
            if mq and creds.enforced:
                log("reconnecting with fresh credentials before the old ones expire")
                close(mq)
                mq = None
            creds = fresh
        if mq is None:
            try:
                mq = connect(cfg, creds)
                last_io = connected_at = ticks_ms()
                log("connected to %s:%d" % (creds.c["host"], creds.c["port"]))
            except MQTTException as e:
                creds = None  # refused: ask credsign again, the device may have been fixed
                d = backoff_ms(conn_failures)
                conn_failures += 1
                log("broker refused the credentials (CONNACK %s); retrying in %dms" % (e.args[0], d))
                sleep_ms(d)
                continue
            except OSError as e:
                d = backoff_ms(conn_failures)
                conn_failures += 1
                log("cannot connect to %s:%d: OSError %s; retrying in %dms" % (
                    creds.c["host"], creds.c["port"], e.args[0] if e.args else "", d))
                sleep_ms(d)
                continue
        try:
            mq.check_msg()  # raises OSError when the broker closed the connection
            if ticks_diff(ticks_ms(), next_pub) >= 0:
                mq.publish(cfg["topic"], "message %d from %s" % (sent + 1, cfg["device"]), qos=1)
                sent += 1
                log("published message %d" % sent)
                last_io = ticks_ms()
                next_pub = ticks_add(last_io, interval_ms)
            elif ticks_diff(ticks_ms(), last_io) >= 30000:  # keep-alive is 60 s
                mq.ping()
                last_io = ticks_ms()
        except (OSError, MQTTException) as e:
            close(mq)
            mq = None
            d = backoff_ms(conn_failures)
            conn_failures += 1
            log("connection lost (%s); reconnecting in %dms" % (type(e).__name__, d))
            sleep_ms(d)
            continue
        sleep_ms(50)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "credsign.json"
    with open(path) as f:
        cfg = json.load(f)
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
