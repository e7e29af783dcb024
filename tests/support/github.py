"""GitHub's dispatches endpoint on 127.0.0.1, for the retrain trigger's tests: records each request (path, headers,
JSON body) and answers `Recorder.status` (204, as GitHub does); tests/conftest.py's `github` fixture runs it."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.seen.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(Recorder.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass
