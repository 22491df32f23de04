"""A ``cj.map`` run as text and HTML: the live progress line and panel, and the summary at the end.

Pure functions of :class:`~compass_jupyter.batch.progress.ProgressState` and
:class:`~compass_jupyter.batch.progress.Summary`. The summary is what a saved
notebook keeps, so it holds no clock reading but the elapsed seconds (two
decimals, which the notebooks' sanitizer knows); the live line (ETA, pauses)
is emptied when the run ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .markup import escape

if TYPE_CHECKING:
    from ..batch.progress import ProgressState, Summary

__all__ = ["progress_html", "progress_line", "summary_bundle", "summary_html", "summary_text"]

GROUPS_SHOWN = 3  # kinds of failure listed in a summary (the rest are counted)
MODELS_SHOWN = 3  # models named as having answered (a gateway may answer under several dated ids)


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _seconds(value: float) -> str:
    if value < 90:
        return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes} min {seconds:02d} s"


def _label(label: Any) -> str:
    return str(label) if isinstance(label, int) else repr(label)


def _labels(labels: tuple[Any, ...], count: int) -> str:
    shown = ", ".join(_label(label) for label in labels)
    more = ", …" if count > len(labels) else ""
    return f"row{'s' if count > 1 else ''} {shown}{more}"


def _stats(state: ProgressState) -> list[str]:
    parts = [f"{state.done:,} of {state.total:,} rows answered"]
    if state.reused:
        parts.append(f"{state.reused:,} reused")
    if state.failed:
        parts.append(f"{state.failed:,} failed")
    parts.append(f"{state.in_flight:,} in flight")
    parts.append(f"{state.tokens_in:,} tokens in, {state.tokens_out:,} out")
    parts.append(_seconds(state.elapsed))
    if state.eta is not None and state.pending:
        parts.append(f"about {_seconds(state.eta)} left")
    if state.paused > 0:
        parts.append(f"paused {_seconds(state.paused)} (rate limited)")
    return parts


def progress_line(state: ProgressState) -> str:
    """One line while a run goes on: done of total, failed, in flight, tokens, elapsed, ETA."""
    line = " · ".join(_stats(state))
    if state.last_error:
        line += f"\nlast error: {state.last_error}"
    return line


def progress_html(state: ProgressState) -> str:
    """The live panel's text (the bar is a widget of its own, or drawn here with ``bar=True``)."""
    stats = " · ".join(escape(part) for part in _stats(state))
    html = f'<div class="compass-map-stats" style="font-size:0.92em">{stats}</div>'
    if state.last_error:
        html += (
            '<div class="compass-map-error" style="font-size:0.88em;color:var(--jp-error-color1,#c62828)">'
            f"last error: {escape(state.last_error)}</div>"
        )
    return html


def _headline(summary: Summary) -> str:
    head = f"{_n(summary.total, 'row')}: {summary.done:,} answered"
    if summary.models:
        head += f" by {', '.join(summary.models[:MODELS_SHOWN])}" + (
            ", …" if len(summary.models) > MODELS_SHOWN else ""
        )
    if summary.reused:
        head += f" ({summary.reused:,} reused, nothing sent for them)"
    head += f", {summary.failed:,} failed"
    if summary.pending:
        head += f", {summary.pending:,} not answered"
    cost = [_n(summary.requests, "request"), f"{summary.tokens_in:,} tokens in, {summary.tokens_out:,} out"]
    if summary.rate_limited:
        cost.append(f"{summary.rate_limited:,} rate-limited (429)")
    cost.append(f"{summary.elapsed:.2f} s")
    return f"{head} · {' · '.join(cost)}"


def _failures(summary: Summary) -> list[str]:
    lines = [f"{group.count:,} × {group.kind} ({_labels(group.labels, group.count)})" for group in summary.errors]
    if len(lines) > GROUPS_SHOWN:
        rest = sum(group.count for group in summary.errors[GROUPS_SHOWN:])
        lines = lines[:GROUPS_SHOWN] + [f"and {_n(rest, 'row')} failing in {len(lines) - GROUPS_SHOWN} other ways"]
    return lines


def _ending(summary: Summary) -> str | None:
    left = summary.pending + summary.failed
    if summary.stopped:
        return f"Stopped early: {summary.stopped}"
    if summary.interrupted:
        kept = f"Interrupted: the {summary.done:,} answered rows are kept."
        return f"{kept} Run {summary.again} again to send only the {_n(left, 'row')} left."
    if summary.failed:
        return f"Run {summary.again} again and only the {_n(summary.failed, 'failed row')} will be sent."
    return None


def summary_text(summary: Summary) -> str:
    """The summary as plain text: the counts and cost, why rows failed, how to go on."""
    lines = [_headline(summary)]
    failures = _failures(summary)
    if failures:
        lines.append("Failed:")
        lines += [f"  {line}" for line in failures]
    ending = _ending(summary)
    if ending:
        lines.append(ending)
    return "\n".join(lines)


def summary_html(summary: Summary) -> str:
    """The summary as HTML (the same words as :func:`summary_text`)."""
    colour = "var(--jp-error-color1,#c62828)" if summary.failed or summary.pending else "inherit"
    html = f'<div class="compass-map-summary"><div style="color:{colour}">{escape(_headline(summary))}</div>'
    failures = _failures(summary)
    if failures:
        items = "".join(f"<li>{escape(line)}</li>" for line in failures)
        html += f'<div>Failed:</div><ul style="margin:0.2em 0">{items}</ul>'
    ending = _ending(summary)
    if ending:
        html += f"<div><em>{escape(ending)}</em></div>"
    return html + "</div>"


def summary_bundle(summary: Summary) -> dict[str, str]:
    return {"text/plain": summary_text(summary), "text/html": summary_html(summary)}
