"""``Compass``: the traitlets face of the kernel's settings, for ``%config Compass``.

The settings themselves live in :mod:`compass_jupyter.settings`; this class only
mirrors them. Assigning a trait (``%config Compass.model = "gpt-4.1"``, or
``c.Compass.model`` in an IPython profile) stores the value there with the
source ``%config``; values set elsewhere (``%compass set``, the environment) are
copied back quietly before each cell so ``%config Compass`` shows what is in effect.
The API key is deliberately not a trait: ``%config Compass`` prints every trait.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, Unicode, observe, validate
from traitlets.config import Configurable

from .._exceptions import ConfigError
from ..settings import SPECS, config

__all__ = ["Compass", "TRAITS"]

TRAITS: tuple[str, ...] = (
    "model",
    "base_url",
    "api_style",
    "api_version",
    "strict",
    "max_retries",
    "timeout",
    "max_tool_rounds",
    "keep_raw",
)


class Compass(Configurable):
    """Settings of compass_jupyter (Core42 Compass chat models). The API key is set with %compass key or COMPASS_API_KEY."""

    model = Unicode(
        SPECS["model"].default,
        help="Default model id (or azure deployment id) when a cell gives no -m. Env: COMPASS_MODEL.",
    ).tag(config=True)
    base_url = Unicode(
        SPECS["base_url"].default,
        help="Server root, e.g. https://api.core42.ai. Env: COMPASS_BASE_URL.",
    ).tag(config=True)
    api_style = CaselessStrEnum(
        ["openai", "azure"],
        default_value=SPECS["api_style"].default,
        help="openai: POST {base}/v1/chat/completions; azure: POST {base}/openai/deployments/{model}/chat/completions. "
        "Env: COMPASS_API_STYLE.",
    ).tag(config=True)
    api_version = Unicode(
        SPECS["api_version"].default,
        help="The api-version query value of the azure style. Env: COMPASS_API_VERSION.",
    ).tag(config=True)
    strict = Bool(
        SPECS["strict"].default,
        help="Refuse (instead of warning about) parameters the documentation reserves for other models.",
    ).tag(config=True)
    max_retries = Int(
        SPECS["max_retries"].default,
        help="Retries of 429, 5xx, connection errors and timeouts (with backoff, honouring Retry-After).",
    ).tag(config=True)
    timeout = Float(
        SPECS["timeout"].default,
        help="Seconds to wait for the server before a timeout error.",
    ).tag(config=True)
    max_tool_rounds = Int(
        SPECS["max_tool_rounds"].default,
        help="Tool-call rounds (--tools) before the loop gives up.",
    ).tag(config=True)
    keep_raw = Bool(
        SPECS["keep_raw"].default,
        help="Keep every chunk the server sent on reply.raw (for debugging a server; costs memory). Env: COMPASS_KEEP_RAW.",
    ).tag(config=True)

    # True while values are copied in from the settings, so that copying back is not a "%config" change.
    _quiet = False
    _starting = False

    def __init__(self, **kwargs: Any) -> None:
        self._starting = True
        try:
            super().__init__(**kwargs)
        finally:
            self._starting = False
        self.refresh()

    @validate(*TRAITS)
    def _check(self, proposal: Any) -> Any:
        name = proposal["trait"].name
        try:
            return SPECS[name].parse(name, proposal["value"])
        except ConfigError as exc:
            raise TraitError(str(exc)) from None

    @observe(*TRAITS)
    def _store(self, change: Any) -> None:
        if not self._quiet:
            config.set(change["name"], change["new"], source="%config")

    def _load_config(self, cfg: Any, section_names: Any = None, traits: Any = None) -> None:
        try:
            super()._load_config(cfg, section_names=section_names, traits=traits)
        except TraitError as exc:
            if not getattr(self, "_starting", False):
                raise  # %config Compass.x = bad: the user sees the error at once
            # A bad value in the profile (or an earlier failed %config) must not stop the extension loading.
            self.log.warning("Ignoring the Compass section of the IPython config: %s", exc)
            return
        # A value equal to the current one fires no change event, yet the user asked for it:
        # record it so %compass config names %config as its source.
        section = cfg.get(type(self).__name__) if hasattr(cfg, "get") else None
        if section and not self._quiet:
            for name in TRAITS:
                if name in section:
                    config.set(name, getattr(self, name), source="%config")

    def refresh(self, *_: Any) -> None:
        """Copy the effective settings into the traits without recording them as set here."""
        self._quiet = True
        try:
            for name in TRAITS:
                try:
                    value = config.get(name)
                    if getattr(self, name) != value:
                        setattr(self, name, value)
                except (ConfigError, TraitError):
                    continue  # a bad environment value is reported when a request uses it
        finally:
            self._quiet = False
