"""The documented request fields, once: type, range or choices, magic option, help.

This table is the one description of a chat-completions field. The request
checks (:mod:`compass_jupyter.request`), the ``%%compass`` options and their help
(:mod:`compass_jupyter.magics.options`), Copy-as-cell
(:mod:`compass_jupyter.snippets`) and the playground's controls are derived
from it, so a newly documented field is one row here. Which models support a
field is the catalog's business (:mod:`compass_jupyter.catalog`).

Fields of kind ``json`` have a shape too rich for a row (``messages``, ``tools``,
``response_format``...): the request module checks each with its own rule, and
the magic sets them through dedicated options or ``--param``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Literal

__all__ = ["Field", "FIELDS", "REASONING_EFFORTS", "VERBOSITIES", "INT32", "flagged", "of_kind", "register"]

Kind = Literal["number", "integer", "boolean", "string", "choice", "json"]

REASONING_EFFORTS: tuple[str, ...] = ("minimal", "low", "medium", "high")
VERBOSITIES: tuple[str, ...] = ("low", "medium", "high")
INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Field:
    """One request field as the reference documents it."""

    name: str
    kind: Kind
    help: str
    low: float | None = None  # inclusive bounds of a number or integer; None: not documented
    high: float | None = None
    choices: tuple[str, ...] = ()  # the words a choice field takes
    example: Any = None  # shown in error messages ("Use e.g. temperature=0.7")
    flag: str | None = None  # the %%compass option; None: only through --param
    short: str | None = None  # a short alias of the option
    # The playground shows a control for a row with a step or a start (see playground.controls).
    step: float | None = None  # a playground slider's step; None: no generic slider
    start: Any = None  # where the playground's control starts before it is touched
    aliases: tuple[str, ...] = ()  # names people reach for from other APIs ("seed"): suggested in errors

    @property
    def range_text(self) -> str:
        """``between 0 and 2``, ``at least 1``, ``one of low, medium, high``: what the field allows."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        low, high = self.low, self.high
        if low is not None and high is not None:
            return f"between {low:g} and {high:g}"
        if low is not None:
            return f"at least {low:g}"
        if high is not None:
            return f"at most {high:g}"
        return "any value"

    @property
    def option_help(self) -> str:
        """The help line of the field's %%compass option."""
        if self.choices:
            return f"{self.name} ({', '.join(self.choices)}): {self.help}"
        if self.low is not None and self.high is not None and self.kind in ("number", "integer"):
            return f"{self.name} ({self.low:g}..{self.high:g}): {self.help}"
        return f"{self.name}: {self.help}"


def _rows() -> list[Field]:
    # Grouped by kind, in the order the option help and Copy-as-cell list them.
    return [
        Field("temperature", "number", "higher is more random", 0, 2, example=0.7, flag="--temperature", short="-t", step=0.05, start=1.0),
        Field("top_p", "number", "nucleus sampling: the probability mass to sample from", 0, 1, example=0.9, flag="--top-p", step=0.01, start=1.0),
        Field("min_p", "number", "drop tokens below this fraction of the top token's probability", 0, 1, example=0.05, flag="--min-p", step=0.01, start=0.0),
        Field("presence_penalty", "number", "penalise tokens that already appeared", -2, 2, example=0.5, flag="--presence-penalty", step=0.1, start=0.0),
        Field("frequency_penalty", "number", "penalise tokens by how often they appeared", -2, 2, example=0.5, flag="--frequency-penalty", step=0.1, start=0.0),
        Field("repitition_penalty", "number", "repetition penalty (the API's spelling)", example=1.1, aliases=("repetition_penalty",)),
        Field("top_k", "integer", "sample from the K most likely tokens", 0, example=40, flag="--top-k"),
        Field("max_tokens", "integer", "the most tokens the reply may have", 1, example=256, flag="--max-tokens", start=256, aliases=("max_output_tokens", "max_new_tokens")),
        Field("max_completion_tokens", "integer", "the most tokens the reply may have, reasoning included", 1, example=256, flag="--max-completion-tokens"),
        Field("n", "integer", "number of choices; every choice is shown", 1, 128, example=1, flag="-n", start=1),
        Field("random_seed", "integer", "sampling seed, for replies that repeat", example=7, flag="--seed", start=0, aliases=("seed",)),
        Field("top_logprobs", "integer", "alternatives shown per token with logprobs", 0, 20, example=5, start=5),
        Field("num_beams", "integer", "beam search width", 1, example=4),
        Field("max_seconds", "integer", "time budget of the request", INT32[0], INT32[1], example=60),
        Field("thinking_budget", "integer", "tokens the model may think", 1, example=1024),
        Field("reasoning_effort", "choice", "how hard a reasoning model thinks", choices=REASONING_EFFORTS, example="low", flag="--reasoning-effort", start="medium", aliases=("reasoning",)),
        Field("verbosity", "choice", "how long the answer is", choices=VERBOSITIES, example="low", flag="--verbosity", start="medium"),
        Field("stream", "boolean", "stream the reply"),
        Field("store", "boolean", "store the completion"),
        Field("do_sample", "boolean", "sample instead of greedy decoding"),
        Field("safe_prompt", "boolean", "add a safety prompt"),
        Field("logprobs", "boolean", "return log probabilities"),
        Field("parallel_tool_calls", "boolean", "allow several tool calls at once"),
        Field("user", "string", "an id of the end user", example="user-1234"),
        Field("safety_identifier", "string", "a hashed id of the end user", example="hashed-user-id"),
        Field("prompt_cache_key", "string", "groups requests that share a prompt prefix", example="my-app-v1"),
        Field("service_tier", "string", "the service tier", example="default"),
        Field("ts", "string", "a timestamp", example="2024-03-18T05:40:18.264Z"),
        *(
            Field(name, "json", "checked by its own rule")
            for name in (
                "model", "messages", "audio", "modalities", "stream_options", "logit_bias", "tools",
                "tool_choice", "thinking", "documents", "citation_options",
            )
        ),
        Field("stop", "json", "checked by its own rule", aliases=("stop_sequences",)),
        Field("response_format", "json", "checked by its own rule", aliases=("json",)),
    ]  # fmt: skip


FIELDS: dict[str, Field] = {row.name: row for row in _rows()}
_version = 0


def register(row: Field) -> None:
    """Add (or replace) a row at run time; what is derived from the table follows."""
    global _version
    FIELDS[row.name] = row
    _version += 1


def unregister(name: str) -> None:
    global _version
    FIELDS.pop(name, None)
    _version += 1


def version() -> int:
    """Changes with every register/unregister, so derived structures know when to rebuild."""
    return _version


def of_kind(*kinds: Kind) -> dict[str, Field]:
    """The rows of these kinds, in table order."""
    return {name: row for name, row in FIELDS.items() if row.kind in kinds}


def flagged() -> Iterator[Field]:
    """The rows with a %%compass option of their own, in table order."""
    return (row for row in FIELDS.values() if row.flag)
