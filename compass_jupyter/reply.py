"""Value objects for what came back: Reply, Choice, Usage, TokenLogprob, ToolCall, Audio, Latency.

They are plain dataclasses filled by :mod:`compass_jupyter.stream`; they hold no
connection and no key. A :class:`Reply` renders itself in a notebook through
``_repr_mimebundle_`` (plain mime types only, so saved notebooks stay readable);
richer widget views live in :mod:`compass_jupyter.views`.
"""

from __future__ import annotations

import base64
import io
import json
import math
import wave
from dataclasses import dataclass, field
from typing import Any, Generic, Iterable, TypeVar

__all__ = ["Reply", "Choice", "Usage", "TokenLogprob", "ToolCall", "Audio", "Latency", "pcm16_to_wav", "append"]

_Piece = TypeVar("_Piece", str, bytes)


class _Joined(Generic[_Piece]):
    """A str (or bytes) field that grows by appending pieces, in time linear in its length.

    ``choice.text += piece`` copies the whole text at every chunk, which makes a long
    reply quadratic (3.9 s of parsing for 100,000 tokens). The pieces are kept in a
    list and joined once when the value is read, so streaming appends are O(1) and a
    read costs one join of what arrived since the last read. Dataclasses treat this
    descriptor as the field's default and assign through ``__set__`` in ``__init__``.
    """

    def __init__(self, default: _Piece | None, empty: _Piece) -> None:
        self.default: _Piece | None = default
        self.empty: _Piece = empty

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}_pieces"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.default
        pieces = obj.__dict__.get(self.slot)
        if not pieces:
            return self.default
        if len(pieces) > 1:
            pieces[:] = [self.empty.join(pieces)]
        return pieces[0]

    def __set__(self, obj: Any, value: _Piece | None) -> None:
        obj.__dict__[self.slot] = [] if value is None else [value]

    def append(self, obj: Any, piece: _Piece) -> None:
        pieces = obj.__dict__.setdefault(self.slot, [])
        pieces.append(piece)


def append(obj: Any, name: str, piece: str | bytes) -> None:
    """Append ``piece`` to the growing field ``name`` of a Choice, ToolCall or Audio (O(1))."""
    descriptor = type(obj).__dict__[name]
    descriptor.append(obj, piece)


PCM16_RATE = 24_000  # gpt-4o-audio-preview streams 16-bit mono at 24 kHz


def pcm16_to_wav(pcm: bytes, *, rate: int = PCM16_RATE, channels: int = 1) -> bytes:
    """Wrap raw little-endian 16-bit PCM in a WAV header so any player can play it."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm[: len(pcm) - len(pcm) % 2])
    return buffer.getvalue()


@dataclass
class Usage:
    """Token counts as the server reported them; a detail it did not send stays None.

    ``counted`` is True when the server reported no usage and the client counted it
    instead (see :meth:`compass_jupyter.stream.Accumulator.finish`): the completion
    tokens from what the stream carried, the prompt tokens by an estimate. Such counts
    are shown marked ("≈ ... counted, not reported"), never as the server's own.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    audio_tokens: int | None = None
    prompt_audio_tokens: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    counted: bool = False

    def __post_init__(self) -> None:
        # Read back from an exported conversation, an absent or unreadable mark is "reported".
        self.counted = self.counted is True

    def __add__(self, other: Usage | None) -> Usage:
        if other is None:
            return self

        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            prompt_tokens=add(self.prompt_tokens, other.prompt_tokens),
            completion_tokens=add(self.completion_tokens, other.completion_tokens),
            total_tokens=add(self.total_tokens, other.total_tokens),
            reasoning_tokens=add(self.reasoning_tokens, other.reasoning_tokens),
            cached_tokens=add(self.cached_tokens, other.cached_tokens),
            audio_tokens=add(self.audio_tokens, other.audio_tokens),
            prompt_audio_tokens=add(self.prompt_audio_tokens, other.prompt_audio_tokens),
            # A sum with one counted part is itself partly counted, so it is shown as such.
            counted=bool(self.counted or other.counted),
        )

    @staticmethod
    def total(items: Iterable[Usage | None]) -> Usage | None:
        """The sum of the usages that were reported; None when none was."""
        total: Usage | None = None
        for usage in items:
            if usage is not None:
                total = usage if total is None else total + usage
        return total

    def details(self) -> dict[str, int]:
        """The optional details the server did send (for status lines)."""
        names = ("reasoning_tokens", "cached_tokens", "audio_tokens", "prompt_audio_tokens")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def summary(self) -> str:
        """``12 in · 30 out · 42 total``; counted usage reads ``≈ 12 in · 30 out · 42 total (counted, not reported)``."""

        def shown(value: int | None) -> str:
            return "?" if value is None else str(value)

        parts = [
            f"{shown(self.prompt_tokens)} in",
            f"{shown(self.completion_tokens)} out",
            f"{shown(self.total_tokens)} total",
        ]
        extra = {k.replace("_tokens", "").replace("_", " "): v for k, v in self.details().items() if v}
        parts += [f"{v} {k}" for k, v in extra.items()]
        line = " · ".join(parts)
        if not self.counted:
            return line
        from .rendering.status import COUNTED_MARK, COUNTED_WORDS  # the one wording of every form

        return f"{COUNTED_MARK} {line} ({COUNTED_WORDS})"


@dataclass
class TokenLogprob:
    """One generated token with its log probability and the top alternatives."""

    token: str
    logprob: float
    bytes: list[int] | None = None
    top: list[tuple[str, float]] = field(default_factory=list)

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


@dataclass
class ToolCall:
    """A function call the model asked for; ``result`` is filled once it has run."""

    id: str
    name: str
    arguments_json: str = _Joined("", "")  # type: ignore[assignment]
    index: int = 0
    result: Any = None
    content: str | None = None  # what was sent back to the model
    error: str | None = None
    duration: float | None = None

    @property
    def arguments(self) -> dict[str, Any]:
        """The parsed arguments; ``{}`` for none, the raw text under ``"_raw"`` if it is not JSON."""
        if not self.arguments_json.strip():
            return {}
        try:
            value = json.loads(self.arguments_json)
        except json.JSONDecodeError:
            return {"_raw": self.arguments_json}
        return value if isinstance(value, dict) else {"_value": value}

    @property
    def arguments_valid(self) -> bool:
        try:
            json.loads(self.arguments_json or "{}")
        except json.JSONDecodeError:
            return False
        return True

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_json or "{}"},
        }


@dataclass
class Audio:
    """Audio the model spoke: ``data`` in ``format``; ``wav`` is always playable."""

    data: bytes = _Joined(b"", b"")  # type: ignore[assignment]
    format: str = "pcm16"
    transcript: str = _Joined("", "")  # type: ignore[assignment]
    id: str | None = None
    expires_at: int | None = None

    @property
    def wav(self) -> bytes | None:
        """WAV bytes (pcm16 gets a header); None for formats that are not WAV or pcm16."""
        if self.format == "pcm16":
            return pcm16_to_wav(self.data)
        if self.format == "wav":
            return self.data
        return None

    @property
    def duration(self) -> float | None:
        wav = self.wav
        if wav is None:
            return None
        with wave.open(io.BytesIO(wav)) as w:
            return w.getnframes() / float(w.getframerate() or 1)

    def save(self, path: str) -> str:
        """Write the audio to ``path`` (WAV for pcm16/wav, the raw format otherwise)."""
        with open(path, "wb") as fh:
            fh.write(self.wav or self.data)
        return path

    @property
    def mime(self) -> str:
        return {
            "wav": "audio/wav",
            "pcm16": "audio/wav",
            "mp3": "audio/mpeg",
            "flac": "audio/flac",
            "opus": "audio/ogg",
        }.get(self.format, "application/octet-stream")

    def _repr_html_(self) -> str:
        payload = base64.b64encode(self.wav or self.data).decode()
        return f'<audio controls src="data:{self.mime};base64,{payload}"></audio>'


@dataclass
class Latency:
    """Seconds from sending to the first token and to the end; tokens per second while generating."""

    ttft: float | None = None
    total: float | None = None
    tokens_per_s: float | None = None

    def summary(self) -> str:
        parts = []
        if self.ttft is not None:
            parts.append(f"first token {self.ttft:.2f}s")
        if self.total is not None:
            parts.append(f"total {self.total:.2f}s")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:.0f} tok/s")
        return " · ".join(parts)


@dataclass
class Choice:
    """One of the ``n`` answers."""

    index: int = 0
    text: str = _Joined("", "")  # type: ignore[assignment]
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    audio: Audio | None = None
    reasoning: str | None = _Joined(None, "")  # type: ignore[assignment]
    refusal: str | None = _Joined(None, "")  # type: ignore[assignment]
    citations: list[dict[str, Any]] | None = None

    def message(self) -> dict[str, Any]:
        """This choice as an assistant message for the conversation history."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.text if self.text or not self.tool_calls else None}
        if self.audio is not None and not self.text:
            msg["content"] = self.audio.transcript
        if self.tool_calls:
            msg["tool_calls"] = [call.to_api() for call in self.tool_calls]
        return msg


@dataclass
class Reply:
    """A model's answer to one request, streamed or not.

    ``reply.text`` is the first choice's text; every choice is in ``reply.choices``.
    ``incomplete`` is True when the stream broke off or was interrupted, in which
    case everything that did arrive is still here.
    """

    choices: list[Choice] = field(default_factory=list)
    model: str | None = None
    id: str | None = None
    created: int | None = None
    usage: Usage | None = None
    latency: Latency = field(default_factory=Latency)
    incomplete: bool = False
    interrupted: bool = False
    error: str | None = None
    system_fingerprint: str | None = None
    request: dict[str, Any] = field(default_factory=dict, repr=False)
    raw: Any = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)
    # What the server did differently from what was asked, as expected (information, not a problem).
    notices: list[str] = field(default_factory=list)
    steps: list[Reply] = field(default_factory=list, repr=False)  # earlier tool-call rounds of this turn
    # Who answered: "server", "cache" (the replay cache: nothing was sent, no tokens spent) or
    # "cassette" (a recorded exchange standing in for the server).
    source: str = "server"

    def choice(self, index: int) -> Choice:
        while len(self.choices) <= index:
            self.choices.append(Choice(index=len(self.choices)))
        return self.choices[index]

    @property
    def has_content(self) -> bool:
        """Whether any part of an answer arrived (text, reasoning, a refusal, a tool call, audio)."""
        return any(c.text or c.reasoning or c.refusal or c.tool_calls or c.audio for c in self.choices)

    @property
    def cached(self) -> bool:
        """True when the replay cache answered: nothing was sent and no tokens were spent."""
        return self.source == "cache"

    @property
    def first(self) -> Choice:
        return self.choices[0] if self.choices else Choice()

    @property
    def text(self) -> str:
        return self.first.text

    @property
    def finish_reason(self) -> str | None:
        return self.first.finish_reason

    @property
    def logprobs(self) -> list[TokenLogprob] | None:
        return self.first.logprobs

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool call of this turn: those run in earlier rounds, then this reply's own."""
        calls = [call for step in self.steps for call in step.first.tool_calls]
        return calls + self.first.tool_calls

    @property
    def total_usage(self) -> Usage | None:
        """Usage summed over the tool-call rounds of this turn (``usage`` is the last request's)."""
        return Usage.total(item.usage for item in [*self.steps, self])

    @property
    def audio(self) -> Audio | None:
        return self.first.audio

    @property
    def reasoning(self) -> str | None:
        return self.first.reasoning

    @property
    def citations(self) -> list[dict[str, Any]] | None:
        return self.first.citations

    def json(self) -> Any:
        """The reply text parsed as JSON (for ``response_format`` json replies); ValueError names the problem."""
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            snippet = self.text[:80].replace("\n", " ")
            raise ValueError(
                f"The reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {snippet!r}"
            ) from None

    def status_line(self) -> str:
        """Model, finish reason, tokens and time in one line."""
        parts = [self.model or "?"]
        if self.cached:
            parts.append("cached")
        if self.interrupted:
            parts.append("interrupted")
        elif self.incomplete:
            parts.append("incomplete")
        else:
            parts.append(f"finish: {self.finish_reason or '-'}")
        parts.append(self.usage.summary() if self.usage else "usage not reported")
        lat = self.latency.summary()
        if lat:
            parts.append(lat)
        return " · ".join(parts)

    def __str__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        # Imported here: the rendering package reads replies duck-typed and never imports this module.
        from .rendering.reply import reply_bundle

        return reply_bundle(self)
