"""``python -m compass_jupyter.testing``: serve the stand-in Compass API until interrupted.

The first line printed is ``COMPASS_BASE_URL=http://HOST:PORT``; when the key
was generated (no ``--key``), the second is ``COMPASS_API_KEY=<key>``. Both are
ready to paste into a shell or a ``.env`` file. Ctrl-C or SIGTERM stops the
server and exits with status 0.

``--cassette PATH`` answers every chat request from a cassette recorded by
compass_jupyter instead of making replies up (see
:mod:`compass_jupyter.testing.cassette_server`); a cassette that cannot be read
(missing, not JSON, truncated, from a newer version) ends the command with
status 2 and one paragraph on stderr saying why and what to do.

A ``--host`` other than loopback (127.0.0.0/8, ::1, localhost) is served, but
with a warning on stderr: other machines can then reach the control routes,
and the key is all that stands in their way.
"""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
import threading
import warnings

from .._exceptions import CassetteError
from .guard import ExposedServerWarning, exposure_message, is_loopback_host
from .server import DEFAULT_MODELS, StandInServer


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, serve until interrupted, return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m compass_jupyter.testing",
        description="Serve a deterministic stand-in of the Compass chat-completions API on loopback.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1); any non-loopback address lets other machines in",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free port)")
    parser.add_argument(
        "--key",
        default=None,
        help='the api-key to require (default: a random one, printed); "" accepts any request',
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between streamed chunks (default: 0)")
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated model ids to accept (default: every model of the Compass reference)",
    )
    parser.add_argument(
        "--cassette",
        default=None,
        metavar="PATH",
        help="answer every chat request from this recorded cassette; a request it lacks gets a 400 naming the "
        "nearest recorded one",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request on stderr")
    args = parser.parse_args(argv)
    if args.delay < 0:
        parser.error("--delay must be 0 or more seconds")
    if args.cassette is not None and args.models is not None:
        # Said rather than ignored: a cassette answers for whatever models it recorded.
        parser.error("--models does not apply with --cassette (the cassette answers the models it recorded)")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else DEFAULT_MODELS

    stopped = threading.Event()
    # SIGTERM (docker stop, CI teardown) ends as quietly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        with warnings.catch_warnings():
            # The banner below says the same, louder and with the real port.
            warnings.simplefilter("ignore", ExposedServerWarning)
            server = StandInServer(
                host=args.host,
                port=args.port,
                key=args.key,
                delay=args.delay,
                models=models,
                log=args.verbose,
                cassette=args.cassette,
            ).start()
    except CassetteError as exc:
        # Its message already says what is wrong with the file and how to fix it: no traceback to wade through.
        print(exc.message, file=sys.stderr)
        return 2
    except OSError as exc:
        reason = exc.strerror or exc
        print(f"Cannot serve on {args.host}:{args.port}: {reason}. Pick another --port.", file=sys.stderr)
        return 1
    try:
        print(f"COMPASS_BASE_URL={server.base_url}")
        if args.key is None:
            print(f"COMPASS_API_KEY={server.key}")
        sys.stdout.flush()
        if not is_loopback_host(args.host):
            _warn_exposed(args.host, server.port, keyed=bool(server.key))
        if server.cassette is not None:
            what = f"replaying the cassette {server.cassette.path} ({len(server.cassette)} exchanges)"
        else:
            what = "running"
        print(f"Stand-in Compass server {what}; Ctrl-C to stop.", file=sys.stderr, flush=True)
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _warn_exposed(host: str, port: int, *, keyed: bool) -> None:
    """A banner on stderr that cannot be missed among the start-up lines (never the key)."""
    rule = "!" * 78
    text = textwrap.fill(f"WARNING: NOT LOOPBACK. {exposure_message(host, port, keyed=keyed)}", width=78)
    print(f"{rule}\n{text}\n{rule}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
