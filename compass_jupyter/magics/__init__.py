"""The IPython magics: ``%%compass`` (send the cell) and ``%compass`` (commands).

Loading is cheap on purpose: this module imports IPython's magic machinery,
traitlets and the settings module, nothing else. The engine (httpx), the views
and the widgets are imported by the first cell that needs them.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand

__all__ = ["CompassMagics", "load", "unload"]


@magics_class
class CompassMagics(Magics):
    """``%%compass`` and ``%compass``; the settings object is the ``Compass`` configurable."""

    def __init__(self, shell: Any, settings: Any = None) -> None:
        super().__init__(shell)
        self.settings = settings

    # The option line may hold JSON ({"type": ...}) that IPython's own {var}/$var expansion would mangle.
    @no_var_expand
    @cell_magic("compass")  # type: ignore[arg-type]  # IPython's decorators are typed for its own classes
    def compass_cell(self, line: str, cell: str) -> None:
        """Send the cell to a Compass model. ``%%compass --help`` lists the options."""
        from .cell import run

        run(self.shell, line, cell)

    @line_magic("compass")  # type: ignore[arg-type]
    def compass_line(self, line: str) -> Any:
        """``%compass key|config|set|models|history|reset|usage|export|import|...``; ``%compass help`` lists them."""
        from .commands import Context, run

        return run(Context(self.shell, self.settings), line)


def _quiet_notices() -> None:
    """Show a CompassNotice from any cell (``cj.chat`` too) as a quiet line, not as a Python warning.

    Python's display of a warning names a file and line inside this package, which says
    nothing to the person at the notebook; a notice is information about where a reply
    comes from. Other warnings, and notices issued on other threads, are shown as before.
    """
    import threading
    import warnings

    from .._exceptions import CompassNotice

    original = warnings.showwarning
    if getattr(original, "compass_notices", False):
        return  # loaded before: already in place

    def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, CompassNotice) and threading.current_thread() is threading.main_thread():
            from . import display

            display.info(str(message))
            return
        original(message, category, *args, **kwargs)

    showwarning.compass_notices = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def load(ipython: Any) -> None:
    """Register the magics and the ``Compass`` configurable with ``ipython``."""
    from ..store.context import set_notebook_resolver
    from .configurable import Compass

    unload(ipython)  # loading twice must not leave two Compass configurables behind
    # JupyterLab and Notebook 7 name the notebook in __session__, VS Code in __vsc_ipynb_file__.
    namespace = ipython.user_ns
    set_notebook_resolver(lambda: namespace.get("__session__") or namespace.get("__vsc_ipynb_file__"))
    settings = Compass(parent=ipython)
    ipython.configurables.append(settings)
    ipython.register_magics(CompassMagics(ipython, settings))
    _quiet_notices()


def unload(ipython: Any) -> None:
    """Undo :func:`load`."""
    from .configurable import Compass

    for settings in [c for c in ipython.configurables if isinstance(c, Compass)]:
        ipython.configurables.remove(settings)
    magics = ipython.magics_manager.magics
    for kind in ("line", "cell"):
        owner = getattr(magics[kind].get("compass"), "__self__", None)
        if isinstance(owner, CompassMagics):
            del magics[kind]["compass"]
    ipython.magics_manager.registry.pop("CompassMagics", None)
