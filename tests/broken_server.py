"""Deliberately broken model servers for the verification tests: python -m tests.broken_server MODE PORT.

string_false  answers {"positive": "false"} (a string), HTTP 200
error500      answers 500 to every prediction
wrong_route   serves /classify, not /predict
html_errors   predicts fine but answers bad input with Flask-style HTML error pages
slow          correct answers, 150 ms late
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    mode = "string_false"
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v2/health/ready":
            self._send(200, b'{"ready": true}')
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        route = "/classify" if self.mode == "wrong_route" else "/predict"
        if self.path != route:
            self._send(404, b"<html><body><h1>Not Found</h1></body></html>", "text/html")
            return
        if self.mode == "error500":
            self._send(500, b"<html><body><h1>Internal Server Error</h1></body></html>", "text/html")
            return
        try:
            texts = json.loads(raw)
            assert isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)
            assert self.headers.get("Content-Type", "").startswith("application/json")
        except (ValueError, AssertionError):
            if self.mode == "html_errors":
                self._send(400, b"<!doctype html><title>400 Bad Request</title><h1>Bad Request</h1>", "text/html")
            else:
                self._send(400, b'{"error": "expected a JSON array of strings"}')
            return
        if self.mode == "slow":
            time.sleep(0.15)
        answers = [{"positive": "false" if self.mode == "string_false" else ("good" in t)} for t in texts]
        self._send(200, json.dumps(answers[0] if len(answers) == 1 else answers).encode())

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    Handler.mode = sys.argv[1]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
