"""CPython STAND-IN for MicroPython's umqtt.simple (tests only; see ../README.md).

The calls credsign_client.py makes, with umqtt.simple's blocking semantics,
built on paho-mqtt (1.x or 2.x)."""
import ssl as _ssl
import time

import paho.mqtt.client as mqtt


class MQTTException(Exception):
    pass


class MQTTClient:
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=False, ssl_params={}):
        self.client_id, self.server, self.port = client_id, server, port or (8883 if ssl else 1883)
        self.user, self.pswd, self.keepalive = user, password, keepalive
        self.ssl, self.ssl_params = ssl, ssl_params
        self.m, self.rc, self.lost = None, None, False

    def connect(self, clean_session=True):
        if hasattr(mqtt, "CallbackAPIVersion"):
            m = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                            protocol=mqtt.MQTTv311, clean_session=clean_session)
        else:
            m = mqtt.Client(client_id=self.client_id, protocol=mqtt.MQTTv311, clean_session=clean_session)
        m.username_pw_set(self.user, self.pswd)
        if self.ssl:
            ctx = _ssl.create_default_context()
            if "cadata" in self.ssl_params:
                cadata = self.ssl_params["cadata"]
                ctx.load_verify_locations(cadata=cadata.decode() if b"-----BEGIN" in cadata else cadata)
            if self.ssl_params.get("cert_reqs", _ssl.CERT_REQUIRED) != _ssl.CERT_REQUIRED:
                ctx.check_hostname, ctx.verify_mode = False, _ssl.CERT_NONE
            m.tls_set_context(ctx)
        m.on_connect = lambda c, u, f, rc, p=None: setattr(self, "rc", getattr(rc, "value", rc))
        m.on_disconnect = lambda c, u, *a: setattr(self, "lost", True)
        m.connect(self.server, self.port, keepalive=self.keepalive or 60)  # OSError like a socket
        m.loop_start()
        self.m = m
        deadline = time.monotonic() + 30
        while self.rc is None and not self.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.rc != 0:
            self.disconnect()
            if self.rc in (134, 135):  # paho 2.x maps CONNACK 4/5 to MQTT 5 reason codes
                self.rc -= 130
            if self.rc is None:
                raise OSError(-1)
            raise MQTTException(self.rc)
        return False

    def _alive(self):
        if self.m is None or self.lost:
            raise OSError(-1)

    def publish(self, topic, msg, retain=False, qos=0):
        self._alive()
        info = self.m.publish(topic, msg, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise OSError(-1)
        if qos:
            info.wait_for_publish(timeout=30)
            if not info.is_published():
                raise OSError(-1)

    def check_msg(self):
        self._alive()

    def ping(self):
        self._alive()

    def disconnect(self):
        if self.m is not None:
            self.m.disconnect()
            self.m.loop_stop()
            self.m = None
