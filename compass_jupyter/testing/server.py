"""A loopback stand-in for the Compass chat-completions API (standard library only).

It speaks the same wire format as the real gateway, so code under test goes
through real sockets, real HTTP/1.1 and real server-sent events::

    from compass_jupyter.testing import StandInServer, Scenario

    with StandInServer() as server:          # random port, random key
        ...  # point the client at server.base_url with api-key server.key
        server.enqueue(Scenario(status=429, retry_after=0.1), Scenario(text="Hello"))
        ...  # the next request gets a 429, the one after says "Hello"
        assert server.last_request.body["model"] == "gpt-4o"

    with StandInServer(cassette="run.json") as server:   # answers from a recorded cassette
        ...

This module holds the server's life cycle and what tests look at: the
recorded requests and the queue of scenarios. The routes and the order in
which a chat request is checked and answered are in
:mod:`compass_jupyter.testing.handler`.
"""

from __future__ import annotations

import os
import secrets
import threading
import warnings
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..catalog import MODELS
from .cassette_server import CassetteReplay
from .guard import ExposedServerWarning, exposure_message, is_loopback_host
from .handler import StandInHTTPServer, StandInHTTPServerV6
from .recording import RecordedRequest
from .scenario import Scenario

__all__ = ["DEFAULT_MODELS", "RecordedRequest", "StandInServer"]

#: Every model id the Compass reference names; the stand-in accepts these by default.
DEFAULT_MODELS: tuple[str, ...] = tuple(MODELS)


class StandInServer:
    """A stand-in Compass server on a loopback port, serving from a background thread.

    ``key``: None generates a random key (``secrets.token_urlsafe``); ``""``
    accepts any request without checking ``api-key``. ``delay``: seconds slept
    between streamed chunks (0 = as fast as possible; a non-streamed reply waits
    as long as its stream would take); it may be changed while the server runs.
    ``models``: the accepted model ids (default: :data:`DEFAULT_MODELS`).
    ``log``: print one line per request on stderr.
    ``cassette``: the path of a cassette recorded by compass_jupyter; every chat
    request is then answered with what it recorded, on either route (see
    :mod:`compass_jupyter.testing.cassette_server`: a request it lacks is a 400
    naming the nearest recorded one); ``models`` does not apply. The file is
    read here: a missing or unreadable one raises :class:`~compass_jupyter.CassetteError`.
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
        cassette: str | os.PathLike[str] | None = None,
    ) -> None:
        # First, so that a cassette that cannot be read fails before anything else happens.
        self.cassette: CassetteReplay | None = CassetteReplay(cassette) if cassette is not None else None
        self.host = host
        self.port = port
        self._key = secrets.token_urlsafe(24) if key is None else key
        self.delay = delay
        self.models: frozenset[str] = frozenset(DEFAULT_MODELS if models is None else models)
        self.log = log
        self.requests: list[RecordedRequest] = []
        self._queue: deque[list[Any]] = deque()  # [scenario, uses left]
        self._lock = threading.Lock()
        self._httpd: StandInHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if not is_loopback_host(host):  # allowed (a container may need it), never silently
            warnings.warn(
                exposure_message(host, port or "a free port", keyed=bool(self._key)), ExposedServerWarning, stacklevel=2
            )  # 2: the warning names the caller's line

    # -- life cycle

    def start(self) -> StandInServer:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("This StandInServer is already running; create another one instead.")
        server_class = StandInHTTPServerV6 if ":" in self.host else StandInHTTPServer
        httpd = server_class((self.host, self.port), self)
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
        replaying = f" replaying {str(self.cassette.path)!r}" if self.cassette is not None else ""
        return f"<StandInServer {self.host}:{self.port} {state}{replaying}>"

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

    def _recorded(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)
