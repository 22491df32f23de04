"""Cassettes: every exchange of a run in one readable JSON file, to replay without network or key.

The file::

    {"format": "compass-jupyter/cassette", "version": 1,
     "interactions": [
        {"request": {"body": {...}},
         "response": {"status": 200, "streamed": true, "completion": {...chat.completion...}}},
        {"request": {"body": {...}},
         "response": {"status": 429, "error": {"class": "RateLimitError", "message": "..."}}}]}

A request is matched by its body alone (canonical JSON without ``stream`` and
``stream_options``, see :mod:`.records`), not by the server's address, so a
cassette recorded against Compass replays anywhere. The same request recorded
twice answers with its recordings in order, then repeats the last one. A
request the cassette lacks is a :class:`CassetteError` that names the nearest
recorded request and what differs. The file is rewritten whole after each
exchange (through a temporary file and a rename), so a run that stops half way
leaves a valid cassette of what it did.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from .. import _exceptions
from .._exceptions import APIError, CassetteError, CompassError
from .records import request_key

__all__ = ["Cassette", "CASSETTE_FORMAT", "CASSETTE_VERSION", "recorded_error", "nearest_difference"]

CASSETTE_FORMAT = "compass-jupyter/cassette"
CASSETTE_VERSION = 1
_MESSAGE_WEIGHT = 4.0  # a message that differs entirely counts as four differing fields
_COMPARED = 20_000  # characters of each body compared when looking for the nearest recorded request
_FIX = "Record it again with COMPASS_CASSETTE_MODE=record (or %compass record PATH) against a server."


def _bad(path: Path, what: str) -> CassetteError:
    return CassetteError(f"The cassette {path} {what}. {_FIX}")


class Cassette:
    """One cassette file, either being recorded or being replayed."""

    def __init__(self, path: str | os.PathLike[str], *, mode: str) -> None:
        self.path = Path(path)
        self.mode = mode  # "record" | "replay"
        self.interactions: list[dict[str, Any]] = []
        self._played: dict[str, int] = {}
        self._by_key: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        if mode == "replay":
            self._load()

    # -- reading -------------------------------------------------------------------------
    def _load(self) -> None:
        path = self.path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise CassetteError(
                f"The cassette {path} does not exist, so there is nothing to replay. "
                "Record it first with COMPASS_CASSETTE_MODE=record (or %compass record PATH), "
                "or use COMPASS_CASSETTE_MODE=auto to record when the file is missing."
            ) from None
        except OSError as exc:
            raise _bad(path, f"cannot be read ({exc.strerror or exc})") from None
        problem = None
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problem = f"is not JSON (truncated or another kind of file: {getattr(exc, 'msg', exc)})"
        except RecursionError:
            problem = "is nested too deeply to read"
        if problem is not None:
            raise _bad(path, problem)
        if not isinstance(data, dict) or data.get("format") != CASSETTE_FORMAT:
            raise _bad(path, f'is JSON but not a compass-jupyter cassette (no "format": "{CASSETTE_FORMAT}")')
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise _bad(path, "has no version number")
        if version > CASSETTE_VERSION:
            raise CassetteError(
                f"The cassette {path} was written by a newer compass-jupyter (version {version}; this one reads "
                f"up to {CASSETTE_VERSION}). Upgrade compass-jupyter (pip install -U compass-jupyter)."
            )
        interactions = data.get("interactions")
        if not isinstance(interactions, list):
            raise _bad(path, 'has no "interactions" list')
        for i, item in enumerate(interactions):
            request = item.get("request") if isinstance(item, dict) else None
            body = request.get("body") if isinstance(request, dict) else None
            response = item.get("response") if isinstance(item, dict) else None
            if not isinstance(body, dict) or not isinstance(response, dict):
                raise _bad(path, f"has an interaction ({i}) without a request body and a response")
            self.interactions.append(item)
            self._by_key.setdefault(request_key(body, ""), []).append(item)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The recorded response to this request (the next one, when it was recorded several times)."""
        key = request_key(body, "")
        with self._lock:
            recorded = self._by_key.get(key)
            if not recorded:
                raise self._missing(body)
            played = self._played.get(key, 0)
            self._played[key] = played + 1
            return dict(recorded[min(played, len(recorded) - 1)]["response"])

    def _missing(self, body: dict[str, Any]) -> CassetteError:
        lead = (
            f"The cassette {self.path} holds no answer for this request to {body.get('model', '?')} "
            "(replay sends nothing to a server)."
        )
        nearest = nearest_difference(body, [item["request"]["body"] for item in self.interactions])
        if nearest is None:
            detail = " The cassette is empty."
        else:
            index, differences = nearest
            detail = f" The nearest recorded request (number {index + 1}) differs in {differences}."
        return CassetteError(
            f"{lead}{detail} If the notebook changed on purpose, record the cassette again "
            "(COMPASS_CASSETTE_MODE=record, or %compass record PATH)."
        )

    # -- writing -------------------------------------------------------------------------
    def add(self, body: dict[str, Any], response: dict[str, Any]) -> None:
        """Append one exchange and rewrite the file (atomically: a reader never sees half a cassette)."""
        with self._lock:
            self.interactions.append({"request": {"body": body}, "response": response})
            document = {"format": CASSETTE_FORMAT, "version": CASSETTE_VERSION, "interactions": self.interactions}
            text = json.dumps(document, indent=1, ensure_ascii=False, default=str)
            directory = self.path.parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
                handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(text + "\n")
                os.replace(temporary, self.path)
            except OSError as exc:
                raise CassetteError(
                    f"The cassette {self.path} could not be written ({exc.strerror or exc}). "
                    "Choose a writable path with %compass record PATH (or COMPASS_CASSETTE)."
                ) from None


def nearest_difference(body: dict[str, Any], recorded: list[dict[str, Any]]) -> tuple[int, str] | None:
    """(index of the recorded body most like ``body``, what differs in words), or None when none is recorded."""
    if not recorded:
        return None
    best = min(range(len(recorded)), key=lambda i: (_distance(recorded[i], body), i))
    return best, describe_difference(recorded[best], body)


def _distance(recorded: dict[str, Any], asked: dict[str, Any]) -> float:
    """How far apart two requests are: one per differing field, plus how much the messages' texts differ.

    A notebook's cells differ mostly in their words, so text weighs more than a field: a
    changed prompt is nearest to the request that asked nearly the same thing.
    """
    names = (set(recorded) | set(asked)) - {"stream", "stream_options", "messages"}
    distance = float(sum(1 for name in names if recorded.get(name) != asked.get(name)))
    old, new = recorded.get("messages") or [], asked.get("messages") or []
    distance += abs(len(old) - len(new)) * _MESSAGE_WEIGHT
    for a, b in zip(old, new):
        if a != b:
            # Only on a miss, over texts cut to a size that keeps the comparison quick.
            first = json.dumps(a, sort_keys=True, default=str)[:_COMPARED]
            second = json.dumps(b, sort_keys=True, default=str)[:_COMPARED]
            distance += _MESSAGE_WEIGHT * (1 - difflib.SequenceMatcher(None, first, second).ratio())
    return distance


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_difference(recorded: dict[str, Any], asked: dict[str, Any]) -> str:
    """What differs between a recorded request and the one asked, field by field, in a few words."""
    parts = []
    for name in sorted(set(recorded) | set(asked)):
        if name in ("stream", "stream_options"):
            continue
        old, new = recorded.get(name), asked.get(name)
        if old == new:
            continue
        if name == "messages" and isinstance(old, list) and isinstance(new, list):
            parts.append(_messages_difference(old, new))
        elif name not in recorded:
            parts.append(f"{name} (not recorded; now {_short(new)})")
        elif name not in asked:
            parts.append(f"{name} (recorded {_short(old)}; now not sent)")
        else:
            parts.append(f"{name} (recorded {_short(old)}, now {_short(new)})")
    return "; ".join(parts) if parts else "nothing but how it is delivered"


def _messages_difference(old: list[Any], new: list[Any]) -> str:
    if len(old) != len(new):
        return f"messages (recorded {len(old)}, now {len(new)})"
    for i, (a, b) in enumerate(zip(old, new)):
        if a != b:
            a_content = a.get("content") if isinstance(a, dict) else a
            b_content = b.get("content") if isinstance(b, dict) else b
            return f"messages[{i}] (recorded {_short(a_content)}, now {_short(b_content)})"
    return "messages"


def recorded_error(response: dict[str, Any], cassette: Cassette | None) -> CompassError:
    """The error a recorded response holds, as the same class with the same message."""
    error = response.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        where = cassette.path if cassette is not None else "in use"
        return CassetteError(f"The cassette {where} holds a response with neither a completion nor an error. {_FIX}")
    kind = getattr(_exceptions, str(error.get("class")), None)
    status = response.get("status") if isinstance(response.get("status"), int) else None
    if isinstance(kind, type) and issubclass(kind, APIError):
        return kind(error["message"], status_code=status or None)
    if isinstance(kind, type) and issubclass(kind, CompassError):
        return kind(error["message"])
    return APIError(error["message"], status_code=status or None)
