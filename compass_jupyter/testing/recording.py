"""What the stand-in records of each request it receives, with its secrets masked.

A :class:`RecordedRequest` keeps the real header values (so that a test can
check the key that was sent) but never shows them: its ``repr`` and
:meth:`RecordedRequest.to_json` (what ``GET /_standin/requests`` lists) mask
``api-key`` and ``authorization``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordedRequest", "max_in_window"]

_SECRET_HEADERS = ("api-key", "authorization")


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


def max_in_window(times: list[float], window: float) -> int:
    """The most arrivals in any window [t, t + window): what a rate budget must never exceed."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        most = max(most, end - start + 1)
    return most
