"""Several choices from a server that gives fewer per request: one request per choice, one Reply.

When a request asks for more choices (``n``) than its client's dialect says one
request can give (``Dialect.max_choices``; llama.cpp's server drops ``n``), the
client sends it as ``n`` requests without ``n``, each with its own seed
(:func:`compass_jupyter.dialect.choice_seeds`: the seed asked for and the next
ones, or fixed ones, so the choices differ and repeat on a re-run), and merges
the answers into one :class:`~compass_jupyter.reply.Reply`: choices ``0..n-1``,
usage summed, the warnings once. The parts go one after another (a local server
answers one request at a time anyway), and every chunk of part ``i`` is fed, as
choice ``i``, into the merged reply as it arrives, so a view watching the turn
sees each choice stream in as it would from a server that gives ``n`` itself.

The store, the replay cache and cassettes see the request that was asked, with
its ``n``: it is answered whole from a cassette or the cache before anything is
split, and kept whole afterwards. The parts are neither looked up nor kept on
their own, so a cassette recorded against such a server replays the same cell
for a client of any other.

Each part goes through the client's own retry loop (:class:`~compass_jupyter.client._Call`),
so retries, interrupts and errors behave as for one request; an error or an
interrupt in part ``i`` is raised with the merged reply so far (the choices
before it, and what part ``i`` had sent) as its ``.reply``, marked incomplete.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

from ._exceptions import CompassError
from .dialect import choice_seeds
from .reply import Reply, Usage
from .store.exchanges import Passage
from .stream import Accumulator, Delta, Observer

if TYPE_CHECKING:
    from .client import _Call

__all__ = ["Choices"]

# What a part must not carry: it is one choice, with a seed of its own.
_PART_DROPS = ("n", "random_seed")
_PART_DROPS_EXTRA = ("n", "seed", "random_seed")


class _Part(Passage):
    """A part's passage: the whole request is looked up and kept, never one of its parts."""

    def answer(self) -> tuple[dict[str, Any], str] | None:
        return None

    @property
    def replaying(self) -> bool:
        return False

    def keep(self, reply: Reply | None, error: BaseException | None = None) -> None:
        return None


class _Tee(Accumulator):
    """A part's own accumulator, which also feeds every chunk, as choice ``index``, into the merged reply's."""

    def __init__(self, reply: Reply, merged: Accumulator, index: int, fed: set[int], *, keep_raw: bool) -> None:
        super().__init__(reply, keep_raw=keep_raw)
        self.merged, self.index, self.fed = merged, index, fed

    def feed(self, chunk: dict[str, Any]) -> None:
        super().feed(chunk)  # read (and checked) as the part's first: a chunk it refuses never reaches the merge
        self.fed.add(self.index)
        self.merged.feed(_as_choice(chunk, self.index))


def _as_choice(chunk: dict[str, Any], index: int) -> dict[str, Any]:
    """The chunk as choice ``index`` of the merged reply, without usage (the parts' usage is summed at the end)."""
    merged = {name: value for name, value in chunk.items() if name != "usage"}
    choices = chunk.get("choices")
    if isinstance(choices, list):
        merged["choices"] = [{**item, "index": index} if isinstance(item, dict) else item for item in choices]
    return merged


def _rate(parts: list[Reply]) -> float | None:
    """Tokens per second while generating, over every part (their prompts and first tokens left out)."""
    generated = window = 0.0
    for part in parts:
        latency = part.latency
        if latency.tokens_per_s is None or latency.total is None:
            return None
        seconds = max(latency.total - (latency.ttft or 0.0), 0.0)
        generated += latency.tokens_per_s * seconds
        window += seconds
    return generated / window if window > 0 else None


class Choices:
    """One request of ``n`` choices sent as ``n`` requests of one; see the module's description."""

    def __init__(self, whole: _Call, messages: list[dict[str, Any]], prepared: Mapping[str, Any], n: int) -> None:
        self.whole, self.client, self.messages, self.n = whole, whole.client, messages, n
        self.prepared = dict(prepared)
        self.seeds = choice_seeds(whole.body, n)
        self.keep_raw = bool(self.client.setting("keep_raw"))
        self.reply = Reply(
            model=whole.body.get("model"),
            request=whole.body,
            warnings=list(whole.warnings),
            notices=list(whole.notices),
        )
        observers: list[Observer] | None = [whole.on_delta] if whole.on_delta is not None else None
        self.accumulator = Accumulator(self.reply, observers=observers)
        self.parts: list[Reply] = []
        self.fed: set[int] = set()  # the choices that arrived as chunks (the others come over whole)

    @classmethod
    def needed(cls, whole: _Call, messages: list[dict[str, Any]], prepared: Mapping[str, Any]) -> Choices | None:
        """The split of ``whole`` when its dialect gives fewer choices per request than it asks for, else None."""
        limit = whole.client.dialect.max_choices
        n = whole.body.get("n")
        if limit is None or not isinstance(n, int) or isinstance(n, bool) or n <= limit:
            return None
        return cls(whole, messages, prepared, n)

    # -- the parts -------------------------------------------------------------------------
    def part(self, index: int) -> _Call:
        """Request ``index``: the whole one without ``n``, with seed ``seeds[index]``, feeding choice ``index``."""
        from .client import _Call

        fields = {name: value for name, value in self.prepared.items() if name not in _PART_DROPS}
        extra = self.prepared.get("extra_body") or {}
        fields["extra_body"] = {k: v for k, v in extra.items() if k not in _PART_DROPS_EXTRA} or None
        fields["random_seed"] = self.seeds[index]
        client = self.client
        url, asked, body, _warnings, _notices = client._build(self.messages, **fields)  # the whole one's were shown
        call = _Call(client, url, body, [], None, _Part(route=client.dialect.route(url), body=body, asked=asked))

        def tee(reply: Reply, _observer: Observer | None) -> Accumulator:
            return _Tee(reply, self.accumulator, index, self.fed, keep_raw=self.keep_raw)

        call.make_accumulator = tee
        return call

    def run(self, send: Callable[[_Call], Reply]) -> Reply:
        """Send the parts one after another with ``send`` (the client's retry loop); the merged reply."""
        error: BaseException | None = None
        for index in range(self.n):
            call = self.part(index)
            try:
                self._add(index, send(call), call)
            except BaseException as exc:  # every kind is raised again below, carrying the merged reply
                error = self._failed(exc, call)
                break
        if error is not None:
            # Raised outside the except block: the chain keeps no httpx request, whose headers hold the key.
            raise self.whole.kept_error(error)
        return self.whole.kept(self._finished())

    async def arun(self, send: Callable[[_Call], Awaitable[Reply]]) -> Reply:
        """The async twin of :meth:`run`."""
        error: BaseException | None = None
        for index in range(self.n):
            call = self.part(index)
            try:
                self._add(index, await send(call), call)
            except BaseException as exc:  # every kind is raised again below, carrying the merged reply
                error = self._failed(exc, call)
                break
        if error is not None:
            raise self.whole.kept_error(error)
        return self.whole.kept(self._finished())

    # -- merging ---------------------------------------------------------------------------
    def _add(self, index: int, part: Reply, call: _Call) -> None:
        self.whole.reached = self.whole.reached or call.reached
        self.parts.append(part)
        merged = self.reply
        for message in part.warnings:
            if message not in merged.warnings:
                merged.warnings.append(message)
        if index in self.fed or not part.choices:
            return
        # A whole completion (not streamed, or a server that ignored stream=true): its choice comes over as is.
        choice = dataclasses.replace(part.choices[0], index=index)
        merged.choice(index)
        merged.choices[index] = choice
        if self.whole.on_delta is not None:
            self.whole.on_delta(Delta(reply=merged, choice=index, text=choice.text, finish_reason=choice.finish_reason))

    def _merged(self) -> Reply:
        """The merged reply with its pieces joined, labels and timings from the parts where the chunks gave none."""
        merged = self.accumulator.finish()
        first = self.parts[0] if self.parts else None
        if first is not None:
            if not self.fed:
                merged.model = first.model  # no chunk named the model that answered; the first part's answer did
            for name in ("id", "created", "system_fingerprint"):
                if getattr(merged, name) is None:
                    setattr(merged, name, getattr(first, name))
            if merged.latency.ttft is None:
                merged.latency.ttft = first.latency.ttft
        return self.client._scrub_reply(merged)

    def _finished(self) -> Reply:
        merged = self._merged()
        # Usage is what the parts cost together; one part without any leaves the sum unknown, not low.
        usages = [part.usage for part in self.parts]
        merged.usage = Usage.total(usages) if all(u is not None for u in usages) else None
        merged.latency.tokens_per_s = _rate(self.parts)
        if self.keep_raw:
            merged.raw = [part.raw for part in self.parts]
        return merged

    def _failed(self, error: BaseException, call: _Call) -> BaseException:
        """``error`` of part ``call``, carrying the merged reply so far (when anything arrived) instead of the part's."""
        self.whole.reached = self.whole.reached or call.reached
        partial = getattr(error, "reply", None)
        if partial is None and not self.parts and not self.fed:
            return error  # nothing arrived at all: as a single request that ended so
        if partial is None and not isinstance(error, (CompassError, KeyboardInterrupt, asyncio.CancelledError)):
            return error  # not an end this module knows (a bug): raised as it is
        merged = self._merged()
        merged.incomplete = True
        merged.interrupted = isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)) or bool(
            partial is not None and partial.interrupted
        )
        # What the parts cost, with the interrupted part's own count (a view's Stop carries the merged reply itself).
        usages = [part.usage for part in self.parts]
        if isinstance(partial, Reply) and partial is not merged:
            usages.append(partial.usage)
        merged.usage = Usage.total(usages)
        error.reply = merged  # type: ignore[attr-defined]
        return error
