"""Compare mode: one message to several models, side by side inside the playground's transcript.

The session's ``compare`` sends the turn to every picked model at once and keeps
the first reply in the history. The columns are the widget :class:`CompareView`,
changed so that it lives in the transcript: on its own it displays itself as a
cell output when it starts and when it ends, and each column's observer also
keeps the panel's status line current. Stop closes every model's connection at
once through the turn's client (:class:`~.running.StoppableClient`); the view's
``stop()`` ends whatever that client cannot close at the next chunk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..conversation import Session
from ..turn import TurnObserver
from ..views.widget import CompareView

if TYPE_CHECKING:
    from ..reply import Reply
    from .status import TurnStatus

__all__ = ["MAX_COMPARE", "EmbeddedCompareView", "compare_work", "pick_problem"]

MAX_COMPARE = 4


def pick_problem(models: Sequence[str]) -> str | None:
    """What is wrong with the picked models (None: they can be compared)."""
    if 2 <= len(models) <= MAX_COMPARE:
        return None
    return (
        f"Compare needs two to {MAX_COMPARE} models, and {len(models)} are picked. "
        "Pick them in the Compare list (Ctrl- or Cmd-click picks several), then press Compare."
    )


class EmbeddedCompareView(CompareView):
    """A CompareView that the playground places in its transcript instead of displaying it."""

    status: TurnStatus | None = None  # told what each model's reply does, for the panel's status line

    def observer(self, model: str) -> TurnObserver:
        column = super().observer(model)
        return self.status.watch(model, column) if self.status is not None else column

    # Its widget is already in the transcript, so displaying it when it starts and
    # when it ends would only add stray outputs.
    def show(self) -> EmbeddedCompareView:
        return self

    def _publish(self, replies: list[Reply], error: Any) -> None:
        self._done = True
        for reply, model in zip(replies, self.models):
            reply.model = reply.model or model


def compare_work(
    current: Callable[[], Session],
    text: str,
    *,
    models: list[str],
    stream: bool,
    system: str | None,
    fields: dict[str, Any],
    view: EmbeddedCompareView,
    client: Any = None,
) -> Callable[[], list[Reply]]:
    """The blocking call that compares ``models`` on the session ``current()`` returns, for a worker thread.

    ``client``: what to send through (the turn's stoppable client); None: the session's own.
    """

    def work() -> list[Reply]:
        return current().compare(
            text,
            models=models,
            stream=stream,
            system=system,
            observer=view,
            client=client,
            **fields,
        )

    return work
