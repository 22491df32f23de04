"""Every rendering of the package: replies, usage, comparisons, transcripts, tables, as markdown, HTML and text.

Pure functions from values to strings and mime bundles: no IPython, no widgets,
no display. The live views (:mod:`compass_jupyter.views`) and the magics call
them; so does ``Reply._repr_mimebundle_``. Nothing here imports
:mod:`compass_jupyter.reply` at run time (its types are read duck-typed), so
that module can import this one without a circle.

One job a module:

- :mod:`.markup`: escaping, markdown → HTML, code blocks, the ``--format`` bodies, streaming cut points
- :mod:`.notices`: coloured notices, quiet notes, warnings, one-line confirmations
- :mod:`.status`: a reply's status line and the banner of a partial reply
- :mod:`.logprobs`: token probabilities as a markdown table and an HTML heatmap and table
- :mod:`.parts`: tool calls, citations, audio, reasoning, refusals
- :mod:`.reply`: a whole reply (or choice) as markdown, HTML and text; its mime bundles
- :mod:`.compare`: several models' replies side by side
- :mod:`.usage`: the ``%compass usage`` table
- :mod:`.tables`: generic tables, the settings, the catalog, the help
- :mod:`.transcript`: ``%compass history`` and the playground's message cards

The public functions are also reachable here (``rendering.reply_bundle``), imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = ("markup", "notices", "status", "logprobs", "parts", "reply", "compare", "usage", "tables", "transcript")

if TYPE_CHECKING:
    from .compare import *  # noqa: F403
    from .logprobs import *  # noqa: F403
    from .markup import *  # noqa: F403
    from .notices import *  # noqa: F403
    from .parts import *  # noqa: F403
    from .reply import *  # noqa: F403
    from .status import *  # noqa: F403
    from .tables import *  # noqa: F403
    from .transcript import *  # noqa: F403
    from .usage import *  # noqa: F403


def __getattr__(name: str) -> Any:
    if name in _MODULES:  # a submodule not imported yet
        return importlib.import_module(f".{name}", __name__)
    for module_name in _MODULES:
        module = importlib.import_module(f".{module_name}", __name__)
        if name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
