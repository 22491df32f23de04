"""The playground's parameter controls: one row per request field, each with its "send" box.

The generic controls are made from the fields table (:mod:`compass_jupyter.fields`).
A row with a ``step`` or a ``start`` is shown, as

- a number with a step and both bounds: a slider over them in that step;
- another number: a number box;
- an integer: a number box, bounded when the table gives bounds;
- a choice: a dropdown of its choices;

starting at the row's ``start``, named after its ``%%compass`` option, with its
help and range as the tooltip. A newly documented field is one row in the
table, and the playground shows it.

A few controls are not one plain field and are written here by hand, their
numbers still read from the table: the stop sequences, logprobs with
top_logprobs, the response format, and the voice with the audio format (which
send ``audio`` and ``modalities``).

Every control has a "send" box. Touching the value ticks it, and only ticked
controls are sent, so the server's defaults apply to everything else. A control
the catalog documents only for other models is disabled for the chosen model,
with the reason as its tooltip, and is not sent even if ticked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import ipywidgets as w

from .. import catalog, snippets
from .._exceptions import ValidationError
from ..fields import FIELDS, INT32, Field
from ..rendering.markup import escape

__all__ = ["AUDIO_OUTPUT_MODELS", "Controls", "Param", "reply_format", "unsupported_reason"]

AUDIO_OUTPUT_MODELS: tuple[str, ...] = tuple(m for m, info in catalog.MODELS.items() if info.audio_output)
RESPONSE_FORMAT_TYPES = ("text", "json_object")
# Fields the hand-written controls below send; the generic loop leaves their rows alone.
SPECIAL = frozenset({"stop", "logprobs", "top_logprobs", "response_format", "audio", "modalities"})

WIDE = "240px"  # sliders and the stop box
NARROW = "120px"  # number boxes
CHOICE = "140px"  # dropdowns


def unsupported_reason(field: str, model: str) -> str | None:
    """Why the playground does not send ``field`` to ``model`` (None: it does).

    ``field`` is a request field, or ``"audio"`` for voice and audio format. An
    unknown model gets None: the catalog cannot judge what it accepts.
    """
    info = catalog.get(model)
    if info is None:
        return None
    if field == "audio":
        if info.audio_output:
            return None
        return (
            f"Voice and audio format apply only to models with audio output "
            f"({', '.join(AUDIO_OUTPUT_MODELS)}); the playground does not send them to {info.id}."
        )
    allowed = catalog.RESERVED_PARAMS.get(field)
    if allowed is None or info.id in allowed:
        return None
    problems = catalog.reserved_param_problems(info.id, {field: True})
    head = problems[0].split("; ")[0] if problems else f"{field} is not documented for {info.id}"
    return f"{head}; the playground does not send it to {info.id}."


def reply_format(fields: Mapping[str, Any]) -> str:
    """How the reply to these fields is shown: ``json`` when a JSON object was asked for."""
    return "json" if (fields.get("response_format") or {}).get("type") == "json_object" else "markdown"


@dataclass
class Param:
    """One control: its "send" box, the inputs for its value, and what it adds to the request."""

    name: str
    label: str
    send: Any
    inputs: list[Any]
    value: Callable[[], dict[str, Any]]  # the request fields the control sends
    put: Callable[[Any], None]  # Playground.set: show this value in the inputs
    help: str
    catalog_field: str | None = None  # checked against the catalog for the chosen model
    needs: str | None = None  # another control that must be ticked for this one to be sent
    caption: Any = None
    row: Any = None

    @property
    def input(self) -> Any:
        return self.inputs[0] if self.inputs else self.send

    def set_available(self, reason: str | None) -> None:
        tip = reason or self.help
        for widget in [self.send, *self.inputs]:
            widget.disabled = reason is not None
            widget.tooltip = tip
        # Not on the row: a Box view reads a "description" it does not have when given a tooltip.
        # A checkbox with a description shows that as its title, and a slider puts its tooltip on a
        # hidden label, so the name is an HTML span whose title is ours.
        dim = ";opacity:.5" if reason else ""
        self.caption.value = f'<span title="{escape(tip)}" style="cursor:help{dim}">{escape(self.label)}</span>'


def shown(row: Field) -> bool:
    """Whether the playground has a generic control for the row."""
    return row.name not in SPECIAL and (row.step is not None or row.start is not None)


def _label(row: Field) -> str:
    # The option's name, as a notebook user knows it from %%compass (--seed rather than the field's name).
    return row.flag.lstrip("-").replace("-", "_") if row.flag else row.name


def _help(row: Field) -> str:
    rule = row.range_text
    return f"{row.name}: {row.help}" if rule == "any value" else f"{row.name}: {row.help}; {rule}"


def _readout(step: float) -> str:
    # As many decimals as the step has, and at least two (0.05 reads 0.05, 0.1 reads 0.10).
    return f".{max(2, -math.floor(math.log10(step)))}f" if 0 < step < 1 else ".2f"


def _start(row: Field) -> Any:
    if row.start is not None:
        return row.start
    if row.choices:
        return row.choices[0]
    return row.low if row.low is not None else 0


def _input(row: Field) -> Any:
    """The widget that holds the row's value (None: the row's kind has no generic control)."""
    low, high, start = row.low, row.high, _start(row)
    if row.kind == "number" and row.step is not None and low is not None and high is not None:
        return w.FloatSlider(
            value=start,
            min=low,
            max=high,
            step=row.step,
            readout_format=_readout(row.step),
            continuous_update=False,
            layout=w.Layout(width=WIDE),
        )
    if row.kind == "number":
        return w.FloatText(value=start, step=row.step, layout=w.Layout(width=NARROW))
    if row.kind == "integer" and (low is not None or high is not None):
        return w.BoundedIntText(
            value=start,
            min=INT32[0] if low is None else int(low),
            max=INT32[1] if high is None else int(high),
            layout=w.Layout(width=NARROW),
        )
    if row.kind == "integer":
        return w.IntText(value=start, layout=w.Layout(width=NARROW))
    if row.kind == "choice" and row.choices:
        return w.Dropdown(options=row.choices, value=start, layout=w.Layout(width=CHOICE))
    return None


def _sent(row: Field, widget: Any) -> Callable[[], dict[str, Any]]:
    name = row.name
    if row.kind == "number":
        # Slider arithmetic leaves 0.30000000000000004 behind; nobody means that.
        return lambda: {name: round(float(widget.value), 4)}
    if row.kind == "integer":
        return lambda: {name: int(widget.value)}
    return lambda: {name: widget.value}


class Controls:
    """The playground's parameter rows, what the ticked ones send, and which the chosen model takes."""

    def __init__(self, model: Callable[[], str]) -> None:
        self._model = model  # the chosen model, read when availability is checked
        self.params: dict[str, Param] = {}
        self.aliases: dict[str, str] = {}  # a label that is not the field's name -> the field
        for row in list(FIELDS.values()):
            widget = _input(row) if shown(row) else None
            if widget is not None:
                # Every row is checked against the catalog: it judges the fields it reserves
                # for some models only and passes the rest.
                self._add(row.name, [widget], _sent(row, widget), _help(row), label=_label(row), catalog_field=row.name)
                if _label(row) != row.name:
                    self.aliases[_label(row)] = row.name  # set(seed=7), as the option is spelled
        self._add_special()
        for param in self.params.values():
            if param.needs:
                # Ticking the needed control enables this one: check availability again.
                self.params[param.needs].send.observe(lambda _: self.refresh(), names="value")

    @property
    def rows(self) -> list[Any]:
        return [param.row for param in self.params.values()]

    def _add_special(self) -> None:
        stop = w.Textarea(placeholder="END, \\n\\n", rows=1, layout=w.Layout(width=WIDE))
        top_row = FIELDS["top_logprobs"]
        top = w.IntSlider(
            value=_start(top_row),
            min=top_row.low,
            max=top_row.high,
            continuous_update=False,
            layout=w.Layout(width=WIDE),
        )
        response_format = w.Dropdown(options=RESPONSE_FORMAT_TYPES, value="json_object", layout=w.Layout(width=CHOICE))
        voice = w.Dropdown(options=catalog.VOICES, value=catalog.VOICES[0], layout=w.Layout(width="110px"))
        audio_format = w.Dropdown(options=catalog.AUDIO_FORMATS, value="pcm16", layout=w.Layout(width="100px"))

        def put_stop(value: Any) -> None:
            stop.value = value if isinstance(value, str) else snippets.stop_text(value)

        def put_format(value: Any) -> None:
            response_format.value = value["type"] if isinstance(value, Mapping) else value

        def put_audio(value: Any) -> None:
            voice.value, audio_format.value = (value["voice"], value["format"]) if isinstance(value, Mapping) else value

        self._add(
            "stop",
            [stop],
            lambda: _stop_field(stop.value),
            "stop: up to 4 sequences, separated by commas or newlines; \\n is a newline, \\, a comma",
            put=put_stop,
        )
        # logprobs has no value but its box: logprobs=False unticks it.
        self._add(
            "logprobs",
            [],
            lambda: {"logprobs": True},
            "logprobs: the probability of each token, shown as a table",
            put=lambda value: setattr(self.params["logprobs"].send, "value", bool(value)),
        )
        self._add(
            "top_logprobs",
            [top],
            lambda: {"top_logprobs": int(top.value)},
            f"top_logprobs, {top_row.low:g} to {top_row.high:g}: alternatives listed per token (needs logprobs)",
            needs="logprobs",
        )
        self._add(
            "response_format",
            [response_format],
            lambda: {"response_format": {"type": response_format.value}},
            "response_format: json_object asks for a JSON reply",
            put=put_format,
            catalog_field="response_format",
        )
        self._add(
            "audio",
            [voice, audio_format],
            lambda: {"modalities": ["text", "audio"], "audio": {"voice": voice.value, "format": audio_format.value}},
            "A spoken reply in this voice and format (streaming needs pcm16)",
            put=put_audio,
            label="audio out",
            catalog_field="audio",
        )

    def _add(
        self,
        name: str,
        inputs: list[Any],
        value: Callable[[], dict[str, Any]],
        help_text: str,
        *,
        put: Callable[[Any], None] | None = None,
        label: str | None = None,
        catalog_field: str | None = None,
        needs: str | None = None,
    ) -> None:
        send = w.Checkbox(value=False, indent=False, layout=w.Layout(width="24px", min_width="24px"))
        send.add_class(f"compass-pg-send-{name}")
        caption = w.HTML(layout=w.Layout(width="126px", min_width="126px"))
        caption.add_class(f"compass-pg-label-{name}")

        def put_value(new: Any) -> None:
            inputs[0].value = new

        param = Param(
            name=name,
            label=label or name,
            send=send,
            inputs=inputs,
            value=value,
            put=put or put_value,
            help=help_text,
            catalog_field=catalog_field,
            needs=needs,
            caption=caption,
        )
        for widget in inputs:
            widget.add_class(f"compass-pg-{name}")
            widget.observe(_touched(param), names="value")
        param.row = w.HBox([send, caption, *inputs], layout=w.Layout(align_items="center"))
        self.params[name] = param

    # -- what would be sent ---------------------------------------------------------
    def reason(self, param: Param, models: Sequence[str]) -> str | None:
        """Why ``param`` is not sent to one of ``models`` (None: it is sent to all, if ticked)."""
        if param.catalog_field is not None:
            for model in models:
                reason = unsupported_reason(param.catalog_field, model)
                if reason:
                    return reason
        if param.needs is not None:
            needed = self.params[param.needs]
            if not needed.send.value or self.reason(needed, models):
                return f"{param.name} needs {param.needs}: tick {param.needs} first."
        return None

    def fields(self, models: Sequence[str]) -> dict[str, Any]:
        """The request fields the ticked, available controls send (to every one of ``models``)."""
        out: dict[str, Any] = {}
        for param in self.params.values():
            if param.send.value and self.reason(param, models) is None:
                out.update(param.value())
        return out

    def left_out(self, models: Sequence[str], chosen: str) -> list[str]:
        """Ticked controls the chosen model takes but another of ``models`` does not, with the reason."""
        out = []
        for param in self.params.values():
            if not (param.send.value and param.catalog_field):
                continue
            reason = self.reason(param, models)
            if reason and not self.reason(param, [chosen]):
                out.append(f"{param.name} ({reason})")
        return out

    def assign(self, name: str, value: Any) -> None:
        """Set a control by request field name (or its label) and tick it; ``None`` unticks it."""
        param = self.params.get(self.aliases.get(name, name))
        if param is None:
            raise ValidationError(
                f"The playground has no parameter {name!r}. Use one of {', '.join(self.params)} (or model)."
            )
        if value is None:
            param.send.value = False
            return
        param.put(value)
        if param.inputs:
            # Ticked explicitly: a disabled control ignores the touch, and set() keeps it ticked.
            param.send.value = True

    def refresh(self) -> None:
        """Enable the controls the chosen model takes; disable the others with the reason."""
        model = self._model()
        for param in self.params.values():
            param.set_available(self.reason(param, [model]))


def _touched(param: Param) -> Callable[[Any], None]:
    def tick(change: Any) -> None:
        if not param.send.disabled:
            param.send.value = True

    return tick


def _stop_field(text: str) -> dict[str, Any]:
    stops = snippets.parse_stop(text)
    return {"stop": stops} if stops else {}
