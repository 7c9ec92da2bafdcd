# Device token rotation for credsign_client.py (MicroPython): imported by it
# only when the device token has a lifetime (csd_3.…), so that a board whose
# tokens never expire spends no memory on it. docs/devices.md has the rules.
import json
from time import ticks_add, ticks_diff, ticks_ms


def token_life_ms(token):
    """(minted, expires) in Unix milliseconds of a token minted with a
    lifetime (csd_3.<id>.<device>.<minted ns>.<expires ns>.<MAC>), else None."""
    if not token.startswith("csd_3."):
        return None
    p = token[6:].split(".")
    try:
        m, e = int(p[2]) // 1000000, int(p[3]) // 1000000
    except (IndexError, ValueError):
        return None
    return (m, e) if len(p) == 5 and e > m else None


def replace_file(path, data):
    """Replace path with data: a temporary file beside it, written, closed,
    renamed over it (atomic on LittleFS, FAT's rename is not: a power cut
    may leave the temporary file, never a half-written token file)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
        f.flush()
    import os

    os.rename(tmp, path)
    if hasattr(os, "sync"):
        os.sync()


class Rotation:
    """Exchanges a device token that has a lifetime for a new one at two
    thirds of its life (POST /v1/devices/{id}/tokens/rotate, the token its
    only credential) and writes it to the token file (replace_file). The
    token carries the server's Unix times: they are compared with the
    server's clock as the last credentials' issuedAt showed it, so a module
    with no RTC rotates on time."""

    def __init__(self, client):
        # client: the globals of credsign_client (its call, read_token, log…)
        self.m = client
        self.server_ms, self.at = None, ticks_ms()  # server time at ticks self.at
        self.next_try, self.failures = ticks_ms(), 0

    def saw(self, issued_ms):
        self.server_ms, self.at = issued_ms, ticks_ms()

    def step(self, cfg, ctx):
        m = self.m
        if self.server_ms is None or ticks_diff(ticks_ms(), self.next_try) < 0:
            return
        now = self.server_ms + ticks_diff(ticks_ms(), self.at)
        self.next_try = ticks_add(ticks_ms(), 60000)
        try:
            token = m["read_token"](cfg)
        except m["Retry"]:
            return
        life = token_life_ms(token)
        if life is None:
            return
        at = life[0] + (life[1] - life[0]) * 2 // 3
        if now < at:
            self.next_try = ticks_add(ticks_ms(), min(at - now, 60000))
            return
        try:
            data = m["call"](cfg, ctx, "/v1/devices/" + cfg["device"] + "/tokens/rotate", token, "{}", 201)
            token = None
            new = json.loads(data).get("token", "")
            data = None
            if not new.startswith("csd_"):
                raise m["Retry"]("credsign answered no token")
            replace_file(cfg["token_file"], new + "\n")
        except m["Permanent"] as e:
            # Expired, revoked or rotated already: only re-enrolment helps.
            m["log"]("%s; the device token cannot be rotated: re-enrol the device" % e)
            self.next_try = ticks_add(ticks_ms(), 3600000)
            return
        except Exception as e:  # Retry, OSError, MemoryError
            d = m["backoff_ms"](self.failures, getattr(e, "after_ms", 0))
            self.failures += 1
            self.next_try = ticks_add(ticks_ms(), d)
            m["log"]("device token rotation failed: %s; retrying in %dms" % (m["why"](e), d))
            return
        self.failures = 0
        life = token_life_ms(new)
        new = None
        m["log"]("rotated the device token (the new one expires in %ds)" % (((life[1] if life else now) - now) // 1000))
