"""A tiny Label Studio stand-in: serves photos (/data/upload/... with a token, /public/... without), a stored
prediction, whoami and an empty webhook list, and exchanges a personal access token, as the real one does.
"""
from __future__ import annotations

import http.server
import json
import threading
from contextlib import contextmanager

TOKEN, PAT, ACCESS = "legacy-token-123", "eyJhbGciOi.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln", "short-lived-access"
# Outerwear and accessory (both predicted on these photos) have no label here; pants is "Trousers" via settings.
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="tag" toName="image">
    <Label value="Skin"/><Label value="HAIR"/><Label value="Top"/><Label value="Trousers"/>
    <Label value="Dress"/><Label value="skirt"/><Label value="Shoes"/><Label value="Belt"/>
  </BrushLabels>
  <PolygonLabels name="poly" toName="image"><Label value="Top"/><Label value="Trousers"/></PolygonLabels>
</View>"""

SLOW_GATE = threading.Event()  # opened by a test once it has seen the webhook answer


class FakeLabelStudio(http.server.BaseHTTPRequestHandler):
    """/data/upload/... and /api/... need `Token TOKEN` or `Bearer ACCESS`; /public/... needs nothing."""

    files: dict[str, bytes] = {}
    predictions: dict[int, dict] = {}

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        if not self.path.startswith("/public/"):
            if self.headers.get("Authorization") not in (f"Token {TOKEN}", f"Bearer {ACCESS}"):
                return self._send(401, b'{"detail": "Authentication credentials were not provided."}')
        if "/slow/" in self.path:
            # Held until the test opens the gate: the webhook must answer while this fetch is stuck.
            assert SLOW_GATE.wait(60), "test never released the slow image"
        if self.path == "/api/current-user/whoami":
            return self._send(200, b'{"id": 1, "email": "annotator@example.com"}')
        if self.path.startswith("/api/webhooks/"):
            return self._send(200, b"[]")
        if self.path.startswith("/api/predictions/") and int(name) in self.predictions:
            return self._send(200, json.dumps(self.predictions[int(name)]).encode())
        if name in self.files and not self.path.startswith("/api/"):
            return self._send(200, self.files[name], "image/jpeg")
        self._send(404, b'{"detail": "Not found."}')

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/api/token/refresh" and body.get("refresh") == PAT:
            return self._send(200, json.dumps({"access": ACCESS}).encode())
        self._send(401, b"{}")


@contextmanager
def running(photos):
    """Serve the stand-in on a free port with these photos; yields its base URL and its handler class."""
    handler = type("LS", (FakeLabelStudio,), {"files": {p.name: p.read_bytes() for p in photos}, "predictions": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
