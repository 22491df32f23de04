"""The HTTP side of the stand-in server: the socket server and what it does with each request.

Routes:

- ``POST /v1/chat/completions`` (the model in the body) and
  ``POST /openai/deployments/{deployment}/chat/completions?api-version=...``
  (the deployment is the model; ``api-version`` is required).
- ``POST /_standin/enqueue`` (a scenario object or a list of them, same fields
  as :class:`~compass_jupyter.testing.Scenario`), ``GET /_standin/requests``
  (what was received, the key masked), ``POST /_standin/reset`` (forget both),
  ``GET /_standin/health``: for scripts and other processes. They need the
  ``api-key`` header, ``Content-Type: application/json`` on ``POST`` and no
  foreign ``Origin``, so no web page can drive them (see :mod:`.guard`).

A chat request is handled in this order: it is recorded; the ``api-key``
header is checked (401; a refused request takes no queued scenario); it takes
the next queued scenario (if any); a scenario with an error ``status`` answers
at once; then ``api-version`` (400), the JSON body (400), the model (404
``DeploymentNotFound``) and the fields (400, see
:func:`~compass_jupyter.testing.checks.validate`); then the reply (see
:mod:`compass_jupyter.testing.content`) is sent as one JSON document or, with
``"stream": true``, as chunked ``text/event-stream`` (see
:mod:`compass_jupyter.testing.stream_writer`). A server serving a cassette
answers from it instead, once the body is known to be a JSON object (see
:mod:`compass_jupyter.testing.cassette_server`). Each request runs in its own
thread, so concurrent requests are served concurrently.
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from .cassette_server import CassetteReplay, ReplayAnswer
from .checks import RequestProblem, validate
from .common import dumps, error_body
from .content import build
from .guard import control_refusal, key_matches
from .recording import RecordedRequest
from .scenario import Scenario
from .stream_writer import StreamDropped, StreamWriter
from .wire import completion_json, stream_events

__all__ = ["StandInHTTPServer", "StandInHTTPServerV6", "StandInHost"]

_ROUTES_HINT = (
    "The stand-in serves POST /v1/chat/completions and "
    "POST /openai/deployments/{deployment}/chat/completions?api-version=..."
)
_AUTH_MESSAGE = (
    "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
)
_NOT_FOUND_MESSAGE = (
    "The API deployment for this resource does not exist. If you created the deployment "
    "within the last 5 minutes, please wait a moment and try again."
)
# What a scripted error says when the scenario gives no message: (type, code, message).
_SCRIPTED_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "The request was rejected (stand-in scenario)."),
    401: ("invalid_request_error", "401", _AUTH_MESSAGE),
    403: ("invalid_request_error", "403", "The principal does not have access to this deployment."),
    404: ("invalid_request_error", "DeploymentNotFound", _NOT_FOUND_MESSAGE),
    408: ("timeout", "408", "The request timed out."),
    422: ("invalid_request_error", None, "The request could not be processed (stand-in scenario)."),
    429: ("rate_limit_error", "429", "Rate limit is exceeded. Try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", "502", "Bad gateway."),
    503: (
        "server_error",
        "503",
        "The service is temporarily unable to process your request. Please try again later.",
    ),
    504: ("timeout", "504", "The gateway timed out."),
}
_CONTROL_ROUTES = {
    "/_standin/enqueue": "POST",
    "/_standin/requests": "GET",
    "/_standin/reset": "POST",
    "/_standin/health": "GET",
}


class StandInHost(Protocol):
    """What a handler uses of the :class:`~compass_jupyter.testing.StandInServer` it serves.

    A protocol rather than the class itself, so that this module does not
    import ``server.py`` (which imports this one to start serving).
    """

    log: bool
    delay: float
    models: frozenset[str]
    cassette: CassetteReplay | None

    @property
    def key(self) -> str: ...

    @property
    def base_url(self) -> str: ...

    @property
    def queued(self) -> int: ...

    def reset(self) -> None: ...

    def enqueue(self, *scenarios: Scenario | dict[str, Any]) -> None: ...

    def _take_scenario(self) -> Scenario | None: ...

    def _record(self, request: RecordedRequest) -> None: ...

    def _recorded(self) -> list[RecordedRequest]: ...


class StandInHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its connections, so that ``stop()`` can end them."""

    daemon_threads = True
    request_queue_size = 128
    standin: StandInHost

    def __init__(self, address: tuple[str, int], standin: StandInHost) -> None:
        self.standin = standin
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall for
        # seconds on machines without a resolver; the stand-in never needs the name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def server_activate(self) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive and in-flight connections, so that no request is served after stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return  # the client went away: nothing to report
        super().handle_error(request, client_address)


class StandInHTTPServerV6(StandInHTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "compass-standin/1.0"
    sys_version = ""
    timeout = 120  # an idle kept-alive connection is closed after this many seconds
    server: StandInHTTPServer

    def setup(self) -> None:
        super().setup()
        # Stream chunks must leave as soon as they are written (no Nagle batching).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    @property
    def standin(self) -> StandInHost:
        return self.server.standin

    def log_message(self, format: str, *args: Any) -> None:
        if self.standin.log:
            sys.stderr.write(f"stand-in {self.address_string()} {format % args}\n")

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    # -- plumbing

    def _dispatch(self) -> None:
        # One handler serves every request of a kept-alive connection: reset per request.
        self._headers_sent = False
        try:
            raw = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._send_json(400, error_body(f"Could not read the request body: {exc}"))
            return
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path == "/_standin" or path.startswith("/_standin/"):
            # Before the route is looked up: nothing under /_standin answers a browser or a stranger.
            refusal = control_refusal(
                self.command, self.headers, key=self.standin.key, own_origin=self.standin.base_url
            )
            if refusal:
                self._send_json(*refusal)
            else:
                self._control(path, raw)
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = _parse_json(raw)
        self.standin._record(RecordedRequest(self.command, path, query, headers, body, raw))
        if path == "/v1/chat/completions":
            deployment = None
        elif path.startswith("/openai/deployments/") and path.endswith("/chat/completions") and path.count("/") == 5:
            deployment = unquote(path.split("/")[3])
        else:
            self._send_json(
                404,
                error_body(f"No route for {self.command} {path}. {_ROUTES_HINT}", code="not_found"),
            )
            return
        if self.command != "POST":
            self._send_json(
                405,
                error_body(f"{self.command} is not allowed on {path}; use POST.", code="method_not_allowed"),
                {"Allow": "POST"},
            )
            return
        try:
            self._chat(deployment, query, body)
        except (ConnectionError, TimeoutError, StreamDropped):
            self.close_connection = True
        except Exception:  # a bug in the stand-in: say so instead of hanging the client
            traceback.print_exc()
            self.close_connection = True
            if not self._headers_sent:
                failure = error_body("The stand-in server failed; see its stderr.", error_type="server_error")
                self._send_json(500, failure)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        count = int(length)
        if count < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(count)

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        # From here on a failure can no longer be answered with a 500 (see _dispatch).
        self._headers_sent = True

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = dumps(payload).encode("utf-8")
        self._send_head(
            status,
            {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})},
        )
        self.wfile.write(data)

    # -- control routes

    def _control(self, path: str, raw: bytes) -> None:
        standin = self.standin
        if path not in _CONTROL_ROUTES:
            self._send_json(
                404,
                error_body(
                    f"No admin route {path}. Admin routes: " + ", ".join(f"{m} {p}" for p, m in _CONTROL_ROUTES.items())
                ),
            )
            return
        method = _CONTROL_ROUTES[path]
        if self.command != method:
            self._send_json(405, error_body(f"Use {method} {path}."), {"Allow": method})
            return
        if path == "/_standin/requests":
            self._send_json(200, [r.to_json() for r in standin._recorded()])
        elif path == "/_standin/reset":
            standin.reset()
            self._send_json(200, {"ok": True})
        elif path == "/_standin/health":
            self._send_json(200, {"ok": True})
        else:
            data = _parse_json(raw)
            items = data if isinstance(data, list) else [data]
            try:
                standin.enqueue(*[Scenario.from_dict(item) for item in items])
            except (ValueError, TypeError) as exc:
                self._send_json(
                    400,
                    error_body(
                        f"Bad scenario: {exc} Send a JSON object (or a list of objects) of scenario "
                        'fields, e.g. {"status": 429, "retry_after": 1}.'
                    ),
                )
                return
            self._send_json(200, {"queued": standin.queued})

    # -- chat completions

    def _chat(self, deployment: str | None, query: dict[str, str], body: Any) -> None:
        standin = self.standin
        # The key first: a request without it must not use up a fault a test queued
        # for the client under test (nor let an outsider see the scripted reply).
        if not key_matches(self.headers, standin.key):
            self._send_json(401, {"error": {"code": "401", "message": _AUTH_MESSAGE}})
            return
        scenario = standin._take_scenario()
        if scenario is not None and scenario.is_error:
            error = _scripted_error(scenario, scenario.status)
            self._send_json(scenario.status, error, _retry_headers(scenario))
            return
        if deployment is not None and not query.get("api-version"):
            self._send_json(
                400,
                error_body(
                    "Missing required query parameter 'api-version'. Add ?api-version=2024-11-01-preview "
                    "(or another supported version) to the URL.",
                    param="api-version",
                    code="missing_required_parameter",
                ),
            )
            return
        if body is None:
            self._send_json(
                400,
                error_body(
                    "We could not parse the JSON body of your request. Send a JSON object such as "
                    '{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]} with '
                    "Content-Type: application/json.",
                ),
            )
            return
        if not isinstance(body, dict):
            self._send_json(400, error_body("The request body must be a JSON object.", param=None))
            return
        if standin.cassette is not None:
            # The recording is the authority: the real server judged model and fields when it answered.
            self._replay(standin.cassette.respond(body), scenario or Scenario())
            return
        model = deployment if deployment is not None else body.get("model")
        if not isinstance(model, str) or not model:
            self._send_json(
                400, error_body("you must provide a model parameter", param="model", code="missing_required_parameter")
            )
            return
        if model not in standin.models:
            self._send_json(
                404,
                {
                    "error": {
                        "code": "DeploymentNotFound",
                        "message": f"{_NOT_FOUND_MESSAGE} (The stand-in server does not know the model "
                        f"{model!r}; it knows: {', '.join(sorted(standin.models))}.)",
                    }
                },
            )
            return
        try:
            validate(body)
        except RequestProblem as problem:
            self._send_json(problem.status, problem.to_json())
            return
        scenario = scenario or Scenario()
        completion = build(body, model, scenario)
        stream = body.get("stream") is True
        delay = scenario.delay if scenario.delay is not None else standin.delay
        if scenario.empty_body:
            media_type = "text/event-stream" if stream else "application/json"
            self._send_head(200, {"Content-Type": media_type, "Content-Length": "0"})
            return
        if not stream:
            if delay:
                # A slow server is slow with or without streaming: the same total time.
                time.sleep(delay * len(stream_events(completion)))
            self._send_json(200, completion_json(completion))
            return
        self._send_head(
            200,
            {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Transfer-Encoding": "chunked"},
        )
        # A stream_error_after fault says what a scripted 500 would.
        writer = StreamWriter(self, scenario, delay, error_event=_scripted_error(scenario, 500))
        writer.send(stream_events(completion))

    def _replay(self, answer: ReplayAnswer, scenario: Scenario) -> None:
        """Send a cassette's answer; a queued scenario's delay, quirks and faults shape its stream."""
        if answer.events is None:
            self._send_json(answer.status, answer.payload)
            return
        self._send_head(
            answer.status,
            {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Transfer-Encoding": "chunked"},
        )
        delay = scenario.delay if scenario.delay is not None else self.standin.delay
        StreamWriter(self, scenario, delay, error_event=_scripted_error(scenario, 500)).send(answer.events)


def _scripted_error(scenario: Scenario, status: int) -> dict[str, Any]:
    """The JSON error a scenario scripts for ``status``: its own fields, else the defaults."""
    error_type, code, message = _SCRIPTED_ERRORS.get(
        status,
        (
            "server_error" if status >= 500 else "invalid_request_error",
            str(status),
            f"Error {status} (stand-in scenario).",
        ),
    )
    return error_body(
        scenario.error_message or message,
        code=scenario.error_code if scenario.error_code is not None else code,
        error_type=scenario.error_type or error_type,
    )


def _retry_headers(scenario: Scenario) -> dict[str, str]:
    if scenario.retry_after is None:
        return {}
    seconds = scenario.retry_after
    return {
        "Retry-After": str(int(seconds)) if float(seconds).is_integer() else str(seconds),
        "retry-after-ms": str(int(round(seconds * 1000))),
    }


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
