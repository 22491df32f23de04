"""``Compass``: the traitlets face of the kernel's settings, for ``%config Compass``.

Each trait is made from a :class:`~compass_jupyter.settings.SettingSpec` and reads
and writes the settings themselves (:data:`compass_jupyter.settings.config`): it
keeps no value of its own. So ``%config Compass.model = "gpt-4.1"`` (or
``c.Compass.model`` in an IPython profile) and ``%compass set model=gpt-4.1`` change
the same value, and ``%config Compass`` always shows what is in effect, the
environment included, with no copying between the two. The API key is not a
trait: ``%config Compass`` prints every trait.
"""

from __future__ import annotations

from typing import Any

from traitlets import TraitError, TraitType
from traitlets.config import LoggingConfigurable

from .._exceptions import ConfigError
from ..settings import SPECS, SettingSpec, config

__all__ = ["Compass", "TRAITS"]


class _Setting(TraitType[Any, Any]):
    """A trait that is a view of one setting: reading gives the effective value, assigning sets it."""

    def __init__(self, spec: SettingSpec) -> None:
        env = f" Env: {spec.env}." if spec.env else ""
        super().__init__(default_value=spec.default, help=f"{spec.help[:1].upper()}{spec.help[1:]}.{env}")
        self.spec = spec
        self.info_text = f"a valid {spec.name}"

    def get(self, obj: Any, cls: Any = None) -> Any:
        try:
            return config.get(self.spec.name)
        except ConfigError:
            return self.spec.default  # a bad environment value is reported when a request uses it

    def set(self, obj: Any, value: Any) -> None:
        try:
            config.set(self.spec.name, value, source="%config")
        except ConfigError as exc:
            raise TraitError(str(exc)) from None

    def from_string(self, s: str) -> Any:
        return s  # the setting's own parser reads strings (command line, profile files)


TRAITS: tuple[str, ...] = tuple(name for name, spec in SPECS.items() if not spec.secret)


class Compass(LoggingConfigurable):
    """Settings of compass_jupyter (Core42 Compass chat models). The API key is set with %compass key or COMPASS_API_KEY."""

    # One trait per setting, made from its spec (the class body's namespace is where
    # traitlets looks for traits, so they are put there rather than written out by hand).
    locals().update({name: _Setting(SPECS[name]).tag(config=True) for name in TRAITS})

    _starting = False

    def __init__(self, **kwargs: Any) -> None:
        self._starting = True
        try:
            super().__init__(**kwargs)
        finally:
            self._starting = False

    def _load_config(self, cfg: Any, section_names: Any = None, traits: Any = None) -> None:
        try:
            super()._load_config(cfg, section_names=section_names, traits=traits)
        except TraitError as exc:
            if not self._starting:
                raise  # %config Compass.x = bad: the user sees the error at once
            # A bad value in the profile (or an earlier failed %config) must not stop the extension loading.
            self.log.warning("Ignoring the Compass section of the IPython config: %s", exc)
