"""CPython STAND-IN for MicroPython's urequests (tests only; see README.md)."""
import urllib.error
import urllib.request


class Response:
    def __init__(self, status, headers, content):
        self.status_code = status
        self.headers = dict(headers)
        self.content = content
        self.text = content.decode("utf-8", "replace")

    def json(self):
        import json
        return json.loads(self.content)

    def close(self):
        pass


def post(url, data=None, headers=None):
    if isinstance(data, str):
        data = data.encode()
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return Response(r.status, r.headers.items(), r.read())
    except urllib.error.HTTPError as e:  # urequests returns 4xx/5xx, it does not raise
        return Response(e.code, e.headers.items(), e.read())
    except urllib.error.URLError as e:  # urequests raises OSError on network errors
        raise OSError(str(e.reason)) from None
