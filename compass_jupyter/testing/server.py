"""A loopback stand-in for the Compass chat-completions API (standard library only).

It speaks the same wire format as the real gateway, so code under test goes
through real sockets, real HTTP/1.1 and real server-sent events::

    from compass_jupyter.testing import StandInServer, Scenario

    with StandInServer() as server:          # random port, random key
        ...  # point the client at server.base_url with api-key server.key
        server.enqueue(Scenario(status=429, retry_after=0.1), Scenario(text="Hello"))
        ...  # the next request gets a 429, the one after says "Hello"
        assert server.last_request.body["model"] == "gpt-4o"

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
:func:`~compass_jupyter.testing.replies.validate`); then the reply (see
:mod:`compass_jupyter.testing.replies`) is sent as one JSON document or, with
``"stream": true``, as chunked ``text/event-stream``. Each request runs in its
own thread, so concurrent requests are served concurrently.
"""

from __future__ import annotations

import json
import secrets
import socket
import socketserver
import sys
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..catalog import MODELS
from . import replies
from .guard import ExposedServerWarning, control_refusal, exposure_message, is_loopback_host, key_matches
from .scenario import Scenario

__all__ = ["DEFAULT_MODELS", "RecordedRequest", "StandInServer"]

#: Every model id the Compass reference names; the stand-in accepts these by default.
DEFAULT_MODELS: tuple[str, ...] = tuple(MODELS)

_SECRET_HEADERS = ("api-key", "authorization")
_ROUTES_HINT = (
    "The stand-in serves POST /v1/chat/completions and "
    "POST /openai/deployments/{deployment}/chat/completions?api-version=..."
)
_AUTH_MESSAGE = (
    "Access denied due to invalid subscription key. Make sure to provide a valid key for an "
    "active subscription."
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


def _mask_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("****" if k in _SECRET_HEADERS and v else v) for k, v in headers.items()}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received (admin requests are not recorded).

    ``headers`` has lower-case names and the real values (so tests can check
    the key that was sent); ``repr`` and :meth:`to_json` mask ``api-key`` and
    ``authorization``. ``body`` is the parsed JSON, or None when the body was
    not JSON; ``raw`` is the body as received.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, query={self.query!r}, "
            f"headers={_mask_headers(self.headers)!r}, body={self.body!r})"
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data with secret headers masked (what ``GET /_standin/requests`` lists)."""
        data: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": _mask_headers(self.headers),
            "body": self.body,
        }
        if self.body is None and self.raw:
            data["raw"] = self.raw.decode("utf-8", "replace")
        return data


class StandInServer:
    """A stand-in Compass server on a loopback port, serving from a background thread.

    ``key``: None generates a random key (``secrets.token_urlsafe``); ``""``
    accepts any request without checking ``api-key``. ``delay``: seconds slept
    between streamed chunks (0 = as fast as possible; a non-streamed reply waits
    as long as its stream would take); it may be changed while the server runs. ``models``: the accepted model ids (default:
    :data:`DEFAULT_MODELS`). ``log``: print one line per request on stderr.
    A non-loopback ``host`` lets other machines in: it warns (``ExposedServerWarning``).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    ``requests`` lists every :class:`RecordedRequest` received, oldest first.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str | None = None,
        delay: float = 0.0,
        models: Iterable[str] | None = None,
        *,
        log: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self._key = secrets.token_urlsafe(24) if key is None else key
        self.delay = delay
        self.models: frozenset[str] = frozenset(DEFAULT_MODELS if models is None else models)
        self.log = log
        self.requests: list[RecordedRequest] = []
        self._queue: deque[list[Any]] = deque()  # [scenario, uses left]
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        if not is_loopback_host(host):  # allowed (a container may need it), never silently
            warnings.warn(exposure_message(host, port or "a free port", keyed=bool(self._key)),
                          ExposedServerWarning, stacklevel=2)  # 2: the warning names the caller's line

    # -- life cycle

    def start(self) -> StandInServer:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("This StandInServer is already running; create another one instead.")
        server_class = _HTTPServerV6 if ":" in self.host else _HTTPServer
        httpd = server_class((self.host, self.port), _Handler)
        httpd.standin = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"standin-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (safe to call twice)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._httpd is not None else "stopped"
        return f"<StandInServer {self.host}:{self.port} {state}>"

    # -- what tests look at

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (no trailing slash), the value for ``COMPASS_BASE_URL``."""
        if self._httpd is None and self.port == 0:
            raise RuntimeError("The stand-in server has no port yet: call start() first.")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def key(self) -> str:
        """The ``api-key`` the server expects (``""`` when it checks none)."""
        return self._key

    @property
    def last_request(self) -> RecordedRequest | None:
        """The most recent recorded request, or None."""
        with self._lock:
            return self.requests[-1] if self.requests else None

    @property
    def queued(self) -> int:
        """How many requests the queued scenarios will still answer."""
        with self._lock:
            return sum(uses for _, uses in self._queue)

    def clear(self) -> None:
        """Forget the recorded requests (queued scenarios stay)."""
        with self._lock:
            del self.requests[:]

    def reset(self) -> None:
        """Forget the recorded requests and drop the queued scenarios."""
        with self._lock:
            del self.requests[:]
            self._queue.clear()

    def enqueue(self, *scenarios: Scenario | dict[str, Any]) -> None:
        """Queue scenarios (or dicts of Scenario fields); each chat request takes the next one.

        A scenario with ``times=k`` answers k requests. With the queue empty the
        server behaves by default.
        """
        parsed = [s if isinstance(s, Scenario) else Scenario.from_dict(s) for s in scenarios]
        with self._lock:
            self._queue.extend([s, s.times] for s in parsed)

    # -- used by the handler

    def _take_scenario(self) -> Scenario | None:
        with self._lock:
            if not self._queue:
                return None
            entry = self._queue[0]
            entry[1] -= 1
            if entry[1] <= 0:
                self._queue.popleft()
            return entry[0]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    standin: StandInServer

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


class _HTTPServerV6(_HTTPServer):
    address_family = socket.AF_INET6


class _Dropped(Exception):
    """The stream was cut on purpose (Scenario.drop_after)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "compass-standin/1.0"
    sys_version = ""
    timeout = 120  # an idle kept-alive connection is closed after this many seconds
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Stream chunks must leave as soon as they are written (no Nagle batching).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    @property
    def standin(self) -> StandInServer:
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
            self._send_json(400, _error(f"Could not read the request body: {exc}"))
            return
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path == "/_standin" or path.startswith("/_standin/"):
            # Before the route is looked up: nothing under /_standin answers a browser or a stranger.
            refusal = control_refusal(self.command, self.headers, key=self.standin.key,
                                      own_origin=self.standin.base_url)
            if refusal:
                self._send_json(*refusal)
            else:
                self._admin(path, raw)
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = _parse_json(raw)
        self.standin._record(RecordedRequest(self.command, path, query, headers, body, raw))
        if path == "/v1/chat/completions":
            deployment = None
        elif (
            path.startswith("/openai/deployments/")
            and path.endswith("/chat/completions")
            and path.count("/") == 5
        ):
            deployment = unquote(path.split("/")[3])
        else:
            self._send_json(
                404,
                _error(f"No route for {self.command} {path}. {_ROUTES_HINT}", code="not_found"),
            )
            return
        if self.command != "POST":
            self._send_json(
                405,
                _error(f"{self.command} is not allowed on {path}; use POST.", code="method_not_allowed"),
                {"Allow": "POST"},
            )
            return
        try:
            self._chat(deployment, query, raw, body)
        except (ConnectionError, TimeoutError, _Dropped):
            self.close_connection = True
        except Exception:  # a bug in the stand-in: say so instead of hanging the client
            traceback.print_exc()
            self.close_connection = True
            if not self._headers_sent:
                failure = _error("The stand-in server failed; see its stderr.", error_type="server_error")
                self._send_json(500, failure)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
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

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = replies.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._headers_sent = True
        self.wfile.write(data)

    # -- admin API

    def _admin(self, path: str, raw: bytes) -> None:
        standin = self.standin
        routes = {
            "/_standin/enqueue": "POST",
            "/_standin/requests": "GET",
            "/_standin/reset": "POST",
            "/_standin/health": "GET",
        }
        if path not in routes:
            self._send_json(404, _error(f"No admin route {path}. Admin routes: " + ", ".join(
                f"{m} {p}" for p, m in routes.items())))
            return
        if self.command != routes[path]:
            self._send_json(405, _error(f"Use {routes[path]} {path}."), {"Allow": routes[path]})
            return
        if path == "/_standin/requests":
            with standin._lock:
                recorded = list(standin.requests)
            self._send_json(200, [r.to_json() for r in recorded])
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
                self._send_json(400, _error(
                    f"Bad scenario: {exc} Send a JSON object (or a list of objects) of scenario "
                    'fields, e.g. {"status": 429, "retry_after": 1}.'
                ))
                return
            self._send_json(200, {"queued": standin.queued})

    # -- chat completions

    def _chat(self, deployment: str | None, query: dict[str, str], raw: bytes, body: Any) -> None:
        standin = self.standin
        # The key first: a request without it must not use up a fault a test queued
        # for the client under test (nor let an outsider see the scripted reply).
        if not key_matches(self.headers, standin.key):
            self._send_json(401, {"error": {"code": "401", "message": _AUTH_MESSAGE}})
            return
        scenario = standin._take_scenario()
        if scenario is not None and scenario.is_error:
            self._send_scripted_error(scenario)
            return
        if deployment is not None and not query.get("api-version"):
            self._send_json(400, _error(
                "Missing required query parameter 'api-version'. Add ?api-version=2024-11-01-preview "
                "(or another supported version) to the URL.",
                param="api-version", code="missing_required_parameter",
            ))
            return
        if body is None:
            self._send_json(400, _error(
                "We could not parse the JSON body of your request. Send a JSON object such as "
                '{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]} with '
                "Content-Type: application/json.",
            ))
            return
        if not isinstance(body, dict):
            self._send_json(400, _error("The request body must be a JSON object.", param=None))
            return
        model = deployment if deployment is not None else body.get("model")
        if not isinstance(model, str) or not model:
            self._send_json(400, _error(
                "you must provide a model parameter", param="model", code="missing_required_parameter"
            ))
            return
        if model not in standin.models:
            self._send_json(404, {"error": {
                "code": "DeploymentNotFound",
                "message": f"{_NOT_FOUND_MESSAGE} (The stand-in server does not know the model "
                f"{model!r}; it knows: {', '.join(sorted(standin.models))}.)",
            }})
            return
        try:
            replies.validate(body)
        except replies.RequestProblem as problem:
            self._send_json(problem.status, problem.to_json())
            return
        scenario = scenario or Scenario()
        completion = replies.build(body, model, scenario)
        stream = body.get("stream") is True
        delay = scenario.delay if scenario.delay is not None else standin.delay
        if scenario.empty_body:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self._headers_sent = True
            return
        if not stream:
            if delay:
                # A slow server is slow with or without streaming: the same total time.
                time.sleep(delay * len(replies.stream_events(completion)))
            self._send_json(200, replies.completion_json(completion))
            return
        _StreamWriter(self, scenario, delay).send(replies.stream_events(completion))

    def _send_scripted_error(self, scenario: Scenario) -> None:
        error_type, code, message = _SCRIPTED_ERRORS.get(
            scenario.status,
            ("server_error" if scenario.status >= 500 else "invalid_request_error", str(scenario.status),
             f"Error {scenario.status} (stand-in scenario)."),
        )
        headers = {}
        if scenario.retry_after is not None:
            seconds = scenario.retry_after
            headers["Retry-After"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
            headers["retry-after-ms"] = str(int(round(seconds * 1000)))
        self._send_json(scenario.status, {"error": {
            "message": scenario.error_message or message,
            "type": scenario.error_type or error_type,
            "param": None,
            "code": scenario.error_code if scenario.error_code is not None else code,
        }}, headers)


class _StreamWriter:
    """Writes stream events as chunked SSE, with the scenario's quirks and faults."""

    def __init__(self, handler: _Handler, scenario: Scenario, delay: float) -> None:
        self.handler = handler
        self.scenario = scenario
        self.delay = delay
        self.eol = b"\r\n" if scenario.crlf else b"\n"
        self.prefix = b"data:" if scenario.no_space else b"data: "
        self.sent_any = False
        faults = [
            (scenario.malformed_after, "malformed"),
            (scenario.stream_error_after, "error"),
            (scenario.drop_after, "drop"),
        ]
        self.faults = [(count, kind) for count, kind in faults if count is not None]

    def send(self, events: list[replies.StreamEvent]) -> None:
        handler = self.handler
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler._headers_sent = True
        payloads = 0
        for event in events:
            if event.kind == "payload":
                if self._faults(lambda count: count <= payloads):
                    return
                payloads += 1
            elif event.kind in ("finish", "usage"):
                if self._faults(lambda count: True):
                    return
            self._event(replies.dumps(event.data))
        self._event("[DONE]")
        self._chunk(b"")

    def _faults(self, due: Any) -> bool:
        """Fire the faults that are due; True when the stream has ended."""
        fired = [fault for fault in self.faults if due(fault[0])]
        for fault in fired:
            self.faults.remove(fault)
            kind = fault[1]
            if kind == "malformed":
                self._event("{not json")
            elif kind == "error":
                scenario = self.scenario
                self._event(replies.dumps({"error": {
                    "message": scenario.error_message
                    or "The server had an error while processing your request. Sorry about that!",
                    "type": scenario.error_type or "server_error",
                    "param": None,
                    "code": scenario.error_code,
                }}))
                self._chunk(b"")
                return True
            else:
                self._drop()
        return False

    def _event(self, data: str) -> None:
        if self.sent_any:
            if self.delay:
                time.sleep(self.delay)
            if self.scenario.keepalive:
                self._chunk(b": keep-alive" + self.eol + self.eol)
        self.sent_any = True
        encoded = self.prefix + data.encode("utf-8") + self.eol + self.eol
        if self.scenario.split_utf8:
            cut = next((i for i, byte in enumerate(encoded) if byte >= 0xC0), None)
            if cut is not None:
                self._chunk(encoded[: cut + 1])
                # A pause, so that the halves travel as separate network writes.
                time.sleep(0.005)
                self._chunk(encoded[cut + 1 :])
                return
        self._chunk(encoded)

    def _chunk(self, data: bytes) -> None:
        self.handler.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _drop(self) -> None:
        handler = self.handler
        handler.close_connection = True
        try:
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Dropped


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _error(
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
