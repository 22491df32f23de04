"""A loopback HTTP server that answers with exactly the bytes a test scripts.

The stand-in server speaks the wire format correctly; a hostile or broken server
does not. This one sends whatever a test queues (any status, headers, body, or a
list of SSE ``data:`` payloads sent verbatim), over a real socket, so the client
is tested the way it meets such a server.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "sk-raw-Zq8vL2mN4pR6tX9wB3cD5fG7hJ"


@dataclass
class Canned:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a whole body (JSON or not)
    events: list[str] | None = None  # SSE data payloads, sent as "data: ...\n\n" each
    done: bool = True  # end the events with data: [DONE]


class RawServer:
    def __init__(self) -> None:
        self.queue: list[Canned] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)})
                    canned = server.queue.pop(0) if server.queue else Canned(body=b'{"choices": []}')
                if canned.events is None:
                    body = canned.body or b""
                    self.send_response(canned.status)
                    headers = {"content-type": "application/json", **canned.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(canned.status)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                payloads = list(canned.events) + (["[DONE]"] if canned.done else [])
                for payload in payloads:
                    self.wfile.write(f"data: {payload}\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, **kwargs: Any) -> None:
        self.queue.append(Canned(**kwargs))

    def stream(self, *chunks: Any, done: bool = True) -> None:
        """Queue a stream whose events are these values as JSON (strings are sent verbatim)."""
        self.add(events=[c if isinstance(c, str) else json.dumps(c) for c in chunks], done=done)

    def complete(self, data: Any) -> None:
        """Queue a non-streamed answer: this value as the JSON body (bytes verbatim)."""
        self.add(body=data if isinstance(data, bytes) else json.dumps(data).encode())


def chunk(content: Any = None, *, index: Any = 0, finish: Any = None, **delta: Any) -> dict[str, Any]:
    """One ordinary chat.completion.chunk with ``content`` (and any other delta fields)."""
    if content is not None:
        delta["content"] = content
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def completion(content: Any = "Hello", **message: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, **message}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
