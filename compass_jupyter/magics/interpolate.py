"""``{name}`` in a cell body -> the value of ``name`` in the user namespace.

The rules (string.Formatter semantics, ``{{``/``}}`` literal, no underscore
names, no field that would carry the API key) live in
:mod:`compass_jupyter.template`, shared with ``cj.map``'s templates, which are
filled once per row by the engine (and so cannot import anything from here).
"""

from __future__ import annotations

from ..template import MAX_SPEC_NUMBER, interpolate

__all__ = ["MAX_SPEC_NUMBER", "interpolate"]
