"""Who may use the stand-in server: the key, browsers' cross-origin requests, exposure.

The control routes (``/_standin/...``) script the replies a notebook receives
and list every recorded request, prompts included. Three things keep them to
the people who started the server:

- The key. Every control route needs the same ``api-key`` header as the chat
  route (when the server has a key; ``key=""`` turns all checks off).
- No browser "simple requests". A web page can send a cross-origin ``POST``
  with ``Content-Type: text/plain`` (or none) without asking first, and it is
  delivered even though the page cannot read the answer. Control ``POST``\\ s
  therefore need ``Content-Type: application/json``, which a browser only sends
  cross-origin after a preflight that this server never grants (it sends no
  ``Access-Control-Allow-*`` header at all).
- No foreign ``Origin``. Browsers name the page's origin on cross-origin
  requests; anything but the server's own ``base_url`` is refused. The own
  origin comes from the configured host, never from the ``Host`` header, which
  a DNS-rebinding page controls.

A server bound to a non-loopback address is reachable by other machines; the
key is then its only protection, and it travels as plain HTTP. That is allowed
(a container or a VM may need it) but never silently: see :func:`exposure_message`.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping
from email.message import Message
from typing import Any

from .common import error_body

__all__ = [
    "ExposedServerWarning",
    "control_refusal",
    "exposure_message",
    "is_loopback_host",
    "key_matches",
]

# Methods that a control route may receive without a JSON body. The others could
# change state, so they need the Content-Type that browsers cannot send unasked.
_BODYLESS_METHODS = ("GET", "HEAD", "OPTIONS")


class ExposedServerWarning(UserWarning):
    """A stand-in server was asked to listen on an address other machines can reach."""


def is_loopback_host(host: str) -> bool:
    """True when ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost).

    Any other name counts as exposed, even one that resolves to loopback today:
    what it resolves to can change, and ``""`` or ``0.0.0.0`` bind every interface.
    """
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is still loopback
    return address.is_loopback


def exposure_message(host: str, port: int | str, *, keyed: bool) -> str:
    """What a non-loopback bind exposes and how to avoid it (the key itself is never named)."""
    protection = (
        "The api-key is the only protection, and it travels unencrypted (plain HTTP)."
        if keyed
        else "It checks NO key (an empty key was given), so nothing protects it."
    )
    return (
        f"The stand-in Compass server listens on {host}:{port}, which is not a loopback "
        "address: anyone who can reach that port can send chat requests, script the "
        "replies your notebooks receive (POST /_standin/enqueue) and read every recorded "
        f"request, prompts included (GET /_standin/requests). {protection} "
        "Use host 127.0.0.1 (the default) unless other machines really must reach it."
    )


def key_matches(headers: Message | Mapping[str, str], key: str) -> bool:
    """True when the request's ``api-key`` header is the server's key (always, with no key).

    Compared in constant time, so the answer's timing does not reveal how much
    of a guessed key was right.
    """
    if not key:
        return True
    sent = headers.get("api-key") or ""
    return secrets.compare_digest(sent.encode("utf-8"), key.encode("utf-8"))


def control_refusal(method: str, headers: Message, *, key: str, own_origin: str) -> tuple[int, dict[str, Any]] | None:
    """Why a control-route request is refused, as ``(status, JSON error)``, or None to serve it.

    Checked in this order, so that a browser is told it is a browser before
    anything else, and nobody without the key learns more than "401":
    a foreign ``Origin`` (403), the key (401), a state-changing request whose
    ``Content-Type`` is not ``application/json`` (415).
    """
    for origin in headers.get_all("Origin") or []:
        if origin.strip().rstrip("/").lower() != own_origin.lower():
            return 403, _refusal(
                f"Control routes refuse cross-origin requests (Origin: {origin.strip()[:100]}): "
                "a web page must not script this server's replies or read its recorded "
                "requests. Call them from a script, a test or curl, which send no Origin header.",
                "cross_origin_refused",
            )
    if not key_matches(headers, key):
        return 401, _refusal(
            "Control routes need the server's key: send it in the api-key header (the "
            "COMPASS_API_KEY that `python -m compass_jupyter.testing` printed, or "
            "StandInServer.key), e.g. curl -H 'api-key: ...' -H 'Content-Type: application/json'.",
            "401",
        )
    if method.upper() not in _BODYLESS_METHODS:
        media_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            shown = media_type or "none"
            return 415, _refusal(
                f"Control route {method.upper()}s need Content-Type: application/json (got {shown}), "
                "even with an empty body, so that browsers cannot send them unasked. "
                "curl: -H 'Content-Type: application/json' -d '{}'.",
                "unsupported_media_type",
            )
    return None


def _refusal(message: str, code: str) -> dict[str, Any]:
    return error_body(message, code=code)
