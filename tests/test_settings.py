"""settings: precedence, parsing, sources, and the key kept out of sight."""

from __future__ import annotations

import pytest

from compass_jupyter._exceptions import ConfigError
from compass_jupyter.keyguard import mask_key, scrub, scrub_value
from compass_jupyter.settings import SPECS, config, redact


def test_precedence_set_over_environment_over_default(monkeypatch):
    assert config.get("timeout") == SPECS["timeout"].default and config.source("timeout") == "default"
    monkeypatch.setenv("COMPASS_TIMEOUT", "30")
    assert config.get("timeout") == 30.0 and config.source("timeout") == "env COMPASS_TIMEOUT"
    config.set("timeout", "45", source="%compass set")
    assert config.get("timeout") == 45.0 and config.source("timeout") == "%compass set"
    config.unset("timeout")
    assert config.get("timeout") == 30.0


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("timeout", "-1", "between"),
        ("timeout", "soon", "number of seconds"),
        ("max_retries", "2.5", "whole number"),
        ("strict", "maybe", "true or false"),
        ("api_style", "soap", "'openai' or 'azure'"),
        ("base_url", "ftp://x", "http:// or https://"),
        ("view", "fancy", "auto, widget or plain"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_fix(name, value, problem):
    with pytest.raises(ConfigError, match=problem):
        config.set(name, value)
    assert config.source(name) == "default"


def test_effective_settings_show_the_key_masked(monkeypatch):
    monkeypatch.setenv("COMPASS_API_KEY", "sk-live-0123456789abcdef")
    rows = {name: (shown, source) for name, shown, source in config.effective()}
    assert rows["api_key"] == ("sk-...cdef", "env COMPASS_API_KEY")
    assert "0123456789" not in str(rows)


def test_masks_and_scrubbing():
    key = "sk-live-0123456789abcdefXYZ"
    assert mask_key(None) == "(not set)" and mask_key("short") == "****" and mask_key(key) == "sk-...fXYZ"
    assert scrub(f"echo {key}!", [key]) == "echo sk-...fXYZ!"
    assert scrub("part 0123456789abcd of it", [key]) == "part **** of it"  # a long run of the key
    assert scrub("a 0123 word", [key]) == "a 0123 word"  # short runs are ordinary text
    assert scrub_value({"error": [key, {key: 1}]}, [key]) == {"error": ["sk-...fXYZ", {"sk-...fXYZ": 1}]}


def test_redact_always_includes_the_configured_key(monkeypatch):
    monkeypatch.setenv("COMPASS_API_KEY", "sk-live-configured-key-0000")
    assert "configured-key" not in redact("server said sk-live-configured-key-0000")
