"""Settings: where each value comes from, and keeping the key out of sight.

Precedence, highest first: an explicit argument (``Client(base_url=...)``, an
inline ``%%compass`` option) > a value set in the kernel (``%compass set``,
``%config Compass.x``, ``%compass key``, ``%compass local``) > the environment
variable > the default. The environment is read on every lookup, so a changed
``os.environ`` (a test fixture, ``%env``) takes effect at once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

from ._exceptions import ConfigError
from .keyguard import mask_key, scrub, scrub_value

__all__ = ["Config", "SettingSpec", "SPECS", "config", "mask_key", "redact", "redact_value"]

DEFAULT_BASE_URL = "https://api.core42.ai"
API_STYLES = ("openai", "azure")


def _parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false (got {raw!r}). Example: %compass set {name}=true")


def _parse_int(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(name: str, raw: Any) -> int:
        try:
            value = int(str(raw).strip()) if not isinstance(raw, int) or isinstance(raw, bool) else raw
        except ValueError:
            raise ConfigError(
                f"{name} must be a whole number (got {raw!r}). Example: %compass set {name}={low + 1}"
            ) from None
        if isinstance(value, bool) or not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high} (got {raw!r}).")
        return value

    return parse


def _parse_float(low: float, high: float) -> Callable[[str, Any], float]:
    def parse(name: str, raw: Any) -> float:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name} must be a number of seconds (got {raw!r}). Example: %compass set {name}=60"
            ) from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g} (got {raw!r}).")
        return value

    return parse


def _parse_str(name: str, raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        raise ConfigError(f"{name} cannot be empty.")
    return text


def _parse_style(name: str, raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in API_STYLES:
        raise ConfigError(
            f"api_style must be 'openai' or 'azure' (got {raw!r}). "
            "Use 'openai' for POST {base}/v1/chat/completions, 'azure' for /openai/deployments/{model}/..."
        )
    return text


def _parse_url(name: str, raw: Any) -> str:
    text = str(raw).strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise ConfigError(f"base_url must start with http:// or https:// (got {raw!r}). Example: {DEFAULT_BASE_URL}")
    return text


def _parse_offline(name: str, raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in ("off", "local"):
        raise ConfigError(
            f"offline must be 'off' or 'local' (got {raw!r}). With 'local', a kernel without a key "
            "talks to the local model (the [local] extra) instead of failing."
        )
    return text


def _parse_view(name: str, raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in ("auto", "widget", "plain"):
        raise ConfigError(
            f"view must be auto, widget or plain (got {raw!r}). auto uses widgets in a Jupyter front end "
            "and plain mime outputs elsewhere."
        )
    return text


def _parse_choice(*choices: str, aliases: dict[str, str] | None = None, why: str = "") -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        text = str(raw).strip().lower()
        text = (aliases or {}).get(text, text)
        if text not in choices:
            listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
            raise ConfigError(f"{name} must be {listed} (got {raw!r}).{' ' + why if why else ''}")
        return text

    return parse


_OFF_WORDS = {"off": "off", "none": "off", "false": "off", "no": "off", "0": "off"}


def _parse_store(name: str, raw: Any) -> str:
    text = str(raw).strip()
    if text.lower() in _OFF_WORDS:
        return "off"
    if not text or text.lower() == "default":
        return "default"
    return os.path.expanduser(text)


def _parse_optional_path(name: str, raw: Any) -> str | None:
    text = str(raw).strip() if raw is not None else ""
    if not text or text.lower() in _OFF_WORDS:
        return None
    return os.path.expanduser(text)


def _parse_key(name: str, raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        raise ConfigError("The API key is empty. Set COMPASS_API_KEY or run %compass key.")
    return text


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its name, environment variable, default, parser and one line of help.

    This is the only description of a setting: ``%compass set``, ``%compass config``,
    the environment and the ``%config Compass`` traits are all derived from it.
    """

    name: str
    env: str | None
    default: Any
    parse: Callable[[str, Any], Any]
    help: str
    secret: bool = False  # never shown as a trait (``%config Compass`` prints every trait)


SPECS: dict[str, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec("api_key", "COMPASS_API_KEY", None, _parse_key, "sent as the api-key header", secret=True),
        SettingSpec("base_url", "COMPASS_BASE_URL", DEFAULT_BASE_URL, _parse_url, "server root"),
        SettingSpec("api_style", "COMPASS_API_STYLE", "openai", _parse_style, "openai or azure route"),
        SettingSpec(
            "api_version",
            "COMPASS_API_VERSION",
            "2024-11-01-preview",
            _parse_str,
            "api-version query of the azure route",
        ),
        SettingSpec("model", "COMPASS_MODEL", "gpt-4o", _parse_str, "default model"),
        SettingSpec("strict", "COMPASS_STRICT", False, _parse_bool, "reserved parameters are errors, not warnings"),
        SettingSpec(
            "max_retries",
            "COMPASS_MAX_RETRIES",
            3,
            _parse_int(0, 20),
            "retries of 429, 5xx, connect errors and timeouts",
        ),
        SettingSpec(
            "timeout",
            "COMPASS_TIMEOUT",
            120.0,
            _parse_float(0.1, 3600),
            "seconds to wait for the server (read timeout)",
        ),
        SettingSpec(
            "max_tool_rounds",
            "COMPASS_MAX_TOOL_ROUNDS",
            8,
            _parse_int(1, 100),
            "tool-call rounds before the loop gives up",
        ),
        SettingSpec("view", "COMPASS_VIEW", "auto", _parse_view, "how replies render: auto, widget or plain"),
        SettingSpec("offline", "COMPASS_OFFLINE", "off", _parse_offline, "'local': without a key, use the local model"),
        SettingSpec(
            "keep_raw", "COMPASS_KEEP_RAW", False, _parse_bool, "keep the server's chunks on reply.raw (costs memory)"
        ),
        SettingSpec(
            "store",
            "COMPASS_STORE",
            "default",
            _parse_store,
            "SQLite file of every exchange ('default': the per-user data dir; 'off')",
        ),
        SettingSpec(
            "cache",
            "COMPASS_CACHE",
            "off",
            _parse_choice(
                "off",
                "on",
                "refresh",
                aliases={"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"},
                why="With 'on', a request identical to a stored complete one is answered from the store; "
                "'refresh' asks again and keeps the new answer.",
            ),
            "answer identical requests from the store: off, on or refresh",
        ),
        SettingSpec(
            "cassette",
            "COMPASS_CASSETTE",
            None,
            _parse_optional_path,
            "cassette file that records or replays every exchange",
        ),
        SettingSpec(
            "cassette_mode",
            "COMPASS_CASSETTE_MODE",
            "auto",
            _parse_choice(
                "auto",
                "record",
                "replay",
                why="'record' writes every exchange to the cassette, 'replay' answers from it without "
                "network or key, 'auto' replays a cassette that exists and records one that does not.",
            ),
            "record, replay, or auto (replay if the file exists)",
        ),
        SettingSpec(
            "concurrency",
            "COMPASS_CONCURRENCY",
            8,
            _parse_int(1, 256),
            "requests in flight at once in cj.map and --over",
        ),
        SettingSpec(
            "rpm", "COMPASS_RPM", 0, _parse_int(0, 1_000_000), "requests per minute budget of cj.map (0: none)"
        ),
        SettingSpec(
            "tpm", "COMPASS_TPM", 0, _parse_int(0, 1_000_000_000), "tokens per minute budget of cj.map (0: none)"
        ),
    )
}


class Config:
    """The kernel's settings, one layer over the environment and the defaults."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._sources: dict[str, str] = {}
        self._lock = threading.Lock()

    def _spec(self, name: str) -> SettingSpec:
        try:
            return SPECS[name]
        except KeyError:
            known = ", ".join(SPECS)
            raise ConfigError(f"Unknown setting {name!r}. Known settings: {known}.") from None

    def get(self, name: str) -> Any:
        spec = self._spec(name)
        with self._lock:
            if name in self._values:
                return self._values[name]
        if spec.env and os.environ.get(spec.env, "").strip():
            return spec.parse(name, os.environ[spec.env])
        return spec.default

    def source(self, name: str) -> str:
        """Where the effective value comes from: 'set', 'local', 'env COMPASS_X' or 'default'."""
        spec = self._spec(name)
        with self._lock:
            if name in self._sources:
                return self._sources[name]
        if spec.env and os.environ.get(spec.env, "").strip():
            return f"env {spec.env}"
        return "default"

    def set(self, name: str, value: Any, *, source: str = "set") -> Any:
        """Validate and store ``value``; returns the parsed value."""
        spec = self._spec(name)
        parsed = spec.parse(name, value)
        with self._lock:
            self._values[name] = parsed
            self._sources[name] = source
        return parsed

    def unset(self, name: str) -> None:
        self._spec(name)
        with self._lock:
            self._values.pop(name, None)
            self._sources.pop(name, None)

    def is_set(self, name: str) -> bool:
        with self._lock:
            return name in self._values

    def effective(self) -> list[tuple[str, str, str]]:
        """Every setting as (name, display value, source), the key masked."""
        rows = []
        for name in SPECS:
            value = self.get(name)
            shown = mask_key(value) if name == "api_key" else ("" if value is None else str(value))
            rows.append((name, shown, self.source(name)))
        return rows

    def require_key(self) -> str:
        key = self.get("api_key")
        if not key:
            raise ConfigError(
                "No Compass API key found. Set the COMPASS_API_KEY environment variable, "
                "run %compass key in a notebook (a hidden prompt), or pass api_key= to cj.Client(...)."
            )
        return key


def redact(text: str, *keys: str | None) -> str:
    """``text`` with the given keys and the configured one (and long pieces of them) hidden."""
    return scrub(text, (*keys, config.get("api_key")))


def redact_value(value: Any, *keys: str | None) -> Any:
    """:func:`redact` over every string of a parsed JSON value."""
    return scrub_value(value, (*keys, config.get("api_key")))


config = Config()
