"""From ``cj.map``'s arguments to a checked call: every problem is found here, before anything is sent.

In order: the limits (concurrency, rpm, tpm), the controls and request fields
(split as ``cj.chat`` splits them), the rows, the template and the names it uses,
every row's prompt, and one request built and validated as the client will send
it (fields, ranges, model warnings). Then the memo of earlier runs says which
rows are answered already; the others become the engine's jobs. A problem is a
:class:`ValidationError` (or :class:`ConfigError`) of one paragraph that names the
row, and the server has received nothing.
"""

from __future__ import annotations

import difflib
import json
import warnings
from collections import ChainMap
from dataclasses import dataclass, field
from typing import Any, Mapping

from .._exceptions import CompassError, CompassWarning, ValidationError
from ..template import Template
from ..turn import TurnControls
from . import memo
from .budget import TokenEstimate
from .progress import Progress
from .rows import Rows, read
from .runner import Job, Plan

__all__ = ["Call", "prepare"]

_JSON_FORMATS = ("json_object", "json_schema")


@dataclass
class Call:
    """A checked call, ready to run: the engine's plan and jobs, and where answers go."""

    rows: Rows
    plan: Plan
    jobs: list[Job]
    values: list[Any]  # one per row: an answer (reused ones are filled in already), or None
    answers: dict[bytes, Any]  # the memo of this call, which the engine adds to
    progress: Progress
    expand_json: bool
    warned: list[str] = field(default_factory=list)  # shown once already; the rows would repeat them


def _limit(name: str, value: Any) -> int:
    from ..settings import SPECS, config

    raw = config.get(name) if value is None else value
    try:
        return int(SPECS[name].parse(name, raw))
    except CompassError as exc:
        what = "0 for none, " if name != "concurrency" else ""
        raise ValidationError(
            f"{exc} Nothing was sent. Pass {name}= a whole number ({what}or leave it out to use the setting, "
            f"now {config.get(name)}; %compass set {name}=N changes it)."
        ) from None


def _controls(kwargs: dict[str, Any]) -> tuple[TurnControls, dict[str, Any]]:
    controls, fields = TurnControls.split(kwargs)
    if controls.tools:
        raise ValidationError(
            "cj.map and %%compass --over send each row as one request, so tools cannot be used (no tool loop runs "
            "per row); nothing was sent. Call cj.chat(..., tools=[...]) per row instead."
        )
    if controls.new or ("history" in kwargs and controls.history):
        raise ValidationError(
            "cj.map and %%compass --over send each row on its own, outside the conversation (only its system "
            "message applies), so history=True and new=True (--new) do not apply; nothing was sent."
        )
    return controls, fields


def _missing(name: str, available: list[str], label: Any, kind: str, notebook: bool) -> ValidationError:
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.6)
    hint = f" Did you mean {{{close[0]}}}?" if close else ""
    shown = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "") if available else "none"
    where = f"the frame has no column {name!r}" if kind == "frame" else f"row {label!r} has no {name!r}"
    if notebook:
        where += " and the notebook no such variable"
    return ValidationError(
        f"The template uses {{{name}}}, but {where}, so nothing was sent (names it offers: {shown}).{hint} "
        "Write {{ and }} for literal braces."
    )


def _prompts(rows: Rows, template: Template, fallback: Mapping[str, Any] | None) -> list[str]:
    """Every row's prompt; the first row that cannot fill the template stops everything."""
    always = {"row", "index"}
    if rows.kind == "frame":
        columns = set(rows.columns or ())
        for name in template.names:
            if name not in columns and name not in always and (fallback is None or name not in fallback):
                raise _missing(name, list(rows.columns or ()), None, "frame", fallback is not None)
    prompts = []
    for label, ns in zip(rows.labels, rows.namespaces(template.names)):
        for name in template.names:
            if name not in ns and (fallback is None or name not in fallback):
                raise _missing(name, rows.available(ns), label, rows.kind, fallback is not None)
        try:
            prompts.append(template.fill(ns if fallback is None else ChainMap(ns, fallback)))  # type: ignore[arg-type]
        except ValidationError as exc:
            raise ValidationError(f"Row {label!r}: {exc}") from None
    return prompts


def _cassette() -> str | None:
    """The mode of the cassette in use ('record' or 'replay'), or None."""
    try:
        from ..store.exchanges import current_cassette
    except ImportError:
        return None
    cassette = current_cassette()
    return None if cassette is None else str(cassette.mode)


def _cache_mode(asked: str | None, *, resume: bool, cassette: str | None) -> str:
    """The replay cache for the rows: on, so that a call run again after a restart resumes from the store.

    Each row is a request of its own (no history), so an identical request is the same question
    and its stored answer is the answer; the summary counts the rows answered so. Off when
    ``resume=False`` (every row asked again) and while a cassette records (every row must reach
    the server to be recorded). ``cache=`` says otherwise.
    """
    if asked is not None:
        return asked
    return "on" if resume and cassette != "record" else "off"


def _reuse(earlier: Any, *, keep_replies: bool, parse_json: bool) -> tuple[bool, Any]:
    """(True, the answer as this call returns it) from an earlier run's, or (False, None): ask again."""
    if earlier is None or earlier is memo.ASK_AGAIN:
        return False, None
    if keep_replies:  # a whole Reply is wanted: an earlier run that kept only the text does not have it
        return (False, None) if isinstance(earlier, str) else (True, earlier)
    text = earlier if isinstance(earlier, str) else earlier.text
    if not parse_json:
        return True, text
    try:
        return True, json.loads(text)
    except json.JSONDecodeError:
        return False, None


def prepare(
    template: str,
    rows: Any,
    *,
    concurrency: Any = None,
    rpm: Any = None,
    tpm: Any = None,
    replies: bool = False,
    resume: bool = True,
    fallback: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Call:
    """Check a ``cj.map`` call and plan it; ``kwargs`` are ``cj.chat``'s controls and request fields."""
    from ..conversation import session
    from ..media import text_part, user_content

    limits = {name: _limit(name, value) for name, value in (("concurrency", concurrency), ("rpm", rpm), ("tpm", tpm))}
    controls, fields = _controls(kwargs)
    if not isinstance(template, str) or not template.strip():
        raise ValidationError(
            "The template is empty (or not text), so nothing was sent. Write the prompt with {column} "
            "placeholders, e.g. cj.map('Summarise: {text}', rows)."
        )
    read_rows = read(rows)
    filled = Template(template, subject="template")
    prompts = _prompts(read_rows, filled, fallback)

    conversation = session()
    client = conversation._client(controls.client)
    system = controls.system if controls.system is not None else conversation.system
    head = [{"role": "system", "content": system}] if system else []
    media = user_content("", images=controls.images, audio=controls.audio_in)  # read once, shared by every row
    extra = {"name": controls.name} if controls.name else {}

    def messages(prompt: str) -> list[dict[str, Any]]:
        content: Any = [text_part(prompt), *media] if isinstance(media, list) else prompt
        return [*head, {"role": "user", "content": content, **extra}]

    # Not streamed unless asked: nobody watches a row's words arrive, and a whole answer costs less to read.
    stream = controls.stream if "stream" in kwargs else False
    request = {"model": controls.model, "stream": stream, "extra_body": controls.extra_body, **fields}
    # One request built and checked as the client will send it; no key is one error now, not one per row.
    url, body, problems = client.prepare(messages(prompts[0]), **request)
    for problem in problems:  # once for the call, not once per row
        warnings.warn(problem, CompassWarning, stacklevel=4)

    call = memo.call_key(url, body, head, {"media": media, **extra})
    answers = memo.table(call)
    response_format = body.get("response_format")
    parse_json = isinstance(response_format, dict) and response_format.get("type") in _JSON_FORMATS
    base_chars = len(system or "") + len(controls.name or "")
    estimate = TokenEstimate(
        completion=fields.get("max_tokens") or fields.get("max_completion_tokens"), choices=int(fields.get("n") or 1)
    )
    progress = Progress(total=len(read_rows))
    values: list[Any] = [None] * len(read_rows)
    jobs = []
    for position, prompt in enumerate(prompts):
        key = memo.row_key(call, prompt)
        earlier = answers.get(key) if resume else None
        found, value = _reuse(earlier, keep_replies=replies, parse_json=parse_json)
        if found:
            values[position] = value
            progress.reused += 1
            continue
        chars = base_chars + len(prompt)
        jobs.append(Job(position, prompt, chars, key, refresh=earlier is memo.ASK_AGAIN))
        if limits["tpm"] and estimate.request(chars, len(head) + 1) > limits["tpm"]:
            label = read_rows.labels[position]
            raise ValidationError(
                f"Row {label!r} needs about {estimate.request(chars, len(head) + 1):,} tokens (its prompt and the "
                f"reply it may get), more than the tpm budget of {limits['tpm']:,}, so it could never be sent; "
                "nothing was sent. Raise tpm, set max_tokens lower, or shorten the row."
            )
    plan = Plan(
        client=client,
        messages=messages,
        request=request,
        cache=_cache_mode(controls.cache, resume=resume, cassette=_cassette()),
        labels=read_rows.labels,
        concurrency=limits["concurrency"],
        rpm=limits["rpm"],
        tpm=limits["tpm"],
        message_count=len(head) + 1,
        parse_json=parse_json,
        keep_replies=replies,
        estimate=estimate,
    )
    expand = parse_json and not replies and read_rows.kind in ("frame", "series")
    return Call(read_rows, plan, jobs, values, answers, progress, expand, warned=list(problems))
