"""How one server reads a request: a fixed rewrite of every body, and quirks learned on the way.

Every :class:`~compass_jupyter.client.Client` holds one :class:`Dialect`. The
default rewrites nothing, but learns at run time what OpenAI-compatible servers
are often seen to refuse: ``"content": null`` on an assistant message beside
``tool_calls`` (the API's own shape; llama.cpp's server wants a string). When a
server answers such a request with a validation error, the client sends the same
request once more with ``""`` there and the dialect remembers it for the next ones.

A subclass describes a server known in advance (the local llama.cpp server's is
:class:`compass_jupyter.local_model.dialect.LlamaCppDialect`) by overriding
:meth:`Dialect.rewrite`, and says what it does differently from what was asked
in :meth:`Dialect.notices` (one line each, shown with the reply). It also says
what the client must do around it: ``max_choices`` (a server that gives fewer
choices per request than ``n`` asks for gets one request per choice, merged into
one reply) and ``sole_model`` (a server that answers every request with the same
model, whatever id the request names). Nothing here is shared between clients: a
quirk learned by one client's dialect changes no other client's requests.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["Dialect", "choice_seeds", "null_content_as_empty"]

# The seed of the first of n requests standing in for one request of n choices when none was
# asked for: fixed, so the choices repeat when the cell runs again (a seed is asked for anyway).
FIRST_SEED = 0


def has_null_assistant_content(body: Mapping[str, Any]) -> bool:
    return any(m.get("role") == "assistant" and m.get("content") is None for m in body.get("messages", []))


def null_content_as_empty(body: dict[str, Any]) -> dict[str, Any]:
    """The body with ``"content": ""`` where an assistant message has null content (beside tool_calls)."""
    messages = [
        {**m, "content": ""} if m.get("role") == "assistant" and m.get("content") is None else m
        for m in body.get("messages", [])
    ]
    return {**body, "messages": messages}


def choice_seeds(body: Mapping[str, Any], n: int) -> list[int]:
    """The seeds of the ``n`` requests that stand in for one request of ``n`` choices.

    The seed asked for (``random_seed``, or ``seed`` sent through ``extra_body``) and the
    next ones, so each choice differs and all repeat; :data:`FIRST_SEED` and on without one.
    """
    seed = body.get("random_seed", body.get("seed"))
    first = seed if isinstance(seed, int) and not isinstance(seed, bool) else FIRST_SEED
    return list(range(first, first + n))


def _seeds_text(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds)) if len(seeds) <= 4 else f"{seeds[0]} to {seeds[-1]}"


class Dialect:
    """The request shape one server understands; subclasses override :meth:`rewrite`.

    ``null_content_as_empty`` starts False and turns True when the server refuses
    null assistant content (see :meth:`resend_for`). A dialect describes one
    server: when the client's base URL changes (a client that follows the
    kernel's settings), what was learned at the old server is forgotten.
    """

    name = "openai"
    # How many choices one request can give. A server that gives fewer than ``n`` asks for is sent
    # one request per choice (successive seeds) and the answers are merged: compass_jupyter.choices.
    max_choices: int | None = None  # None: as many as asked
    # The model that answers every request whatever id it names (a local server), else None.
    sole_model: str | None = None

    def __init__(self) -> None:
        self.null_content_as_empty = False
        self._server: str | None = None

    def __repr__(self) -> str:
        learned = ", null content sent as ''" if self.null_content_as_empty else ""
        return f"<{type(self).__name__} {self.name}{learned}>"

    def rewrite(self, body: dict[str, Any]) -> dict[str, Any]:
        """The validated body in this server's dialect (the default changes nothing).

        May raise :class:`~compass_jupyter.ValidationError` for what the server
        cannot do, before anything is sent.
        """
        return body

    def notices(self, body: dict[str, Any]) -> list[str]:
        """One line each for what this server will do differently from the validated ``body`` (default: nothing).

        They travel with the request's warnings: shown before the reply and kept on ``reply.warnings``.
        The default names only what the client does for it: several choices as several requests.
        """
        n = body.get("n")
        if self.max_choices is None or not isinstance(n, int) or n <= self.max_choices:
            return []
        most = "one choice" if self.max_choices == 1 else f"at most {self.max_choices} choices"
        return [
            f"This server gives {most} per request, so the {n} choices are {n} requests "
            f"with seeds {_seeds_text(choice_seeds(body, n))}."
        ]

    def route(self, url: str) -> str:
        """Where a request goes, as the store names it: requests to different servers never share a cached answer."""
        return url

    def serving(self, base_url: str) -> None:
        """Note the server the next request goes to; quirks learned at another server are forgotten."""
        base_url = base_url.rstrip("/")
        if self._server is not None and base_url != self._server:
            self.null_content_as_empty = False
        self._server = base_url

    def adapt(self, body: dict[str, Any]) -> dict[str, Any]:
        """:meth:`rewrite`, then what was learned about this server."""
        body = self.rewrite(body)
        if self.null_content_as_empty:
            body = null_content_as_empty(body)
        return body

    def resend_for(self, status: int, message: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The body to send again at once when a refusal is one this dialect can fix, else None.

        Learns the quirk, so the later requests are sent in the fixed shape from
        the start. A body already in that shape gives None, so it is resent once only.
        """
        if status in (400, 422, 500) and "validation error" in message.lower() and has_null_assistant_content(body):
            self.null_content_as_empty = True
            return null_content_as_empty(body)
        return None
