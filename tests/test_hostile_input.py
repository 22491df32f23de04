"""Hostile or broken input: one clear paragraph, never a traceback, nothing sent, history kept.

Every refusal here is checked the same way: the error type, words naming the
problem, no request at the stand-in server, the session history unchanged, and
the API key nowhere in the message.
"""

from __future__ import annotations

import json
import math
import pathlib
import struct
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import compass_jupyter as cj
from compass_jupyter import magics
from compass_jupyter._exceptions import ValidationError
from compass_jupyter.jsonsafe import MAX_JSON_DEPTH, check_json
from compass_jupyter.magics.interpolate import interpolate
from compass_jupyter.media import MAX_AUDIO_BYTES, audio_part
from compass_jupyter.request import build_body

USER = [{"role": "user", "content": "Hi"}]


# -- harness ---------------------------------------------------------------------------------


@pytest.fixture
def shell(compass_server):
    sh = InteractiveShell.instance()
    magics.load(sh)
    before = set(sh.user_ns)
    run(sh, "%%compass\nFirst")  # a history to keep unchanged
    assert len(compass_server.requests) == 1
    yield sh
    magics.unload(sh)
    for name in set(sh.user_ns) - before:
        del sh.user_ns[name]


def run(sh: InteractiveShell, code: str) -> tuple[Any, str]:
    with capture_output() as cap:
        result = sh.run_cell(code)
    assert result.success or result.error_in_exec is not None or result.error_before_exec is not None
    return result, cap.stderr


def ok(sh: InteractiveShell, code: str) -> None:
    result, stderr = run(sh, code)
    assert result.success, stderr


def refused(sh: InteractiveShell, server, code: str, *words: str) -> str:
    """Run a cell that must fail as one paragraph naming ``words``, without sending anything."""
    sent = len(server.requests)
    history = json.dumps(cj.session().messages)
    result, stderr = run(sh, code)
    assert not result.success
    error = result.error_in_exec or result.error_before_exec
    assert type(error).__name__ == "UsageError", stderr
    assert "UsageError:" in stderr and "Traceback" not in stderr, stderr
    assert stderr.strip().count("\n") == 0, f"not one paragraph: {stderr}"
    for word in words:
        assert word in stderr, f"{word!r} not in {stderr!r}"
    assert len(server.requests) == sent, "a refused cell must send nothing"
    assert json.dumps(cj.session().messages) == history, "a refused cell must leave the history unchanged"
    assert server.key not in stderr
    return stderr


def refused_call(server, call: Callable[[], Any], *words: str) -> str:
    """The Python API's twin of ``refused``: a ValidationError, nothing sent, history kept."""
    sent = len(server.requests)
    history = json.dumps(cj.session().messages)
    with pytest.raises(ValidationError) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "\n" not in message
    assert len(server.requests) == sent, "a refused call must send nothing"
    assert json.dumps(cj.session().messages) == history
    assert server.key not in message
    return message


def sent_text(server) -> str:
    return server.requests[-1].body["messages"][-1]["content"]


# -- 1. {…} fields: no underscore names, checked before anything is resolved ----------------

SETUP = "_x = 1\nclass A:\n    _b = 2\n    plain = 'ok'\na = A()\nd = {'_k': 3, 'k': 4}"


@pytest.mark.parametrize(
    "field, named",
    [
        ("{_x}", "{_x} uses '_x'"),
        ("{a._b}", "{a._b} uses '_b'"),
        ("{a.__class__}", "{a.__class__} uses '__class__'"),
        ("{d[_k]}", "{d[_k]} uses '_k'"),
        ("{a.plain.__class__.__mro__}", "uses '__class__'"),
        ("{_}", "{_} uses '_'"),
        ("{d[k]!r:>{_x}}", "{_x} uses '_x'"),  # inside a format spec too
    ],
)
def test_underscore_fields_are_refused(shell, compass_server, field, named):
    ok(shell, SETUP)
    refused(shell, compass_server, f"%%compass\nLook at {field}", named, "underscore", "plain variable", "{{")


def test_the_dunder_walk_to_the_key_is_refused(shell, compass_server):
    cell = "%%compass\n{get_ipython.__func__.__globals__[os].environ[COMPASS_API_KEY]}"
    refused(shell, compass_server, cell, "'__func__'", "underscore")


def test_a_plain_path_to_the_key_is_refused_too(shell, compass_server):
    ok(shell, "import os")
    refused(
        shell, compass_server, "%%compass\n{os.environ[COMPASS_API_KEY]}", "{os.environ[COMPASS_API_KEY]}", "API key"
    )


def test_no_attribute_getter_runs_when_any_field_is_refused(shell, compass_server):
    ok(
        shell,
        "calls = []\nclass P:\n    @property\n    def value(self):\n        calls.append(1)\n        return 'v'\np = P()",
    )
    refused(shell, compass_server, "%%compass\n{p.value} then {p.value.__class__}", "'__class__'")
    refused(shell, compass_server, "%%compass\n{p.value} then {p._hidden}", "'_hidden'")
    assert shell.user_ns["calls"] == []


def test_plain_fields_keep_working(shell, compass_server):
    ok(shell, "import math\nclass F:\n    shape = (2, 3)\ndf = F()\nrows = [5, 6]\nx = 'hi'\npi = math.pi\nw = 4")
    ok(shell, "%%compass\n{df.shape} {rows[0]} {x!r} {pi:.2f} [{x:>{w}}] {{literal}}")
    assert sent_text(compass_server) == "(2, 3) 5 'hi' 3.14 [  hi] {literal}"


def test_a_huge_format_width_is_refused(shell, compass_server):
    ok(shell, "x = 'a'")
    refused(shell, compass_server, "%%compass\n{x:999999999}", "{x}", "width or precision")


# -- 2. numbered and empty fields are reported as written --------------------------------------


@pytest.mark.parametrize("field", ["{0}", "{}", "{1}", "{0.real}"])
def test_numbered_fields_are_named_as_written(shell, compass_server, field):
    refused(shell, compass_server, f"%%compass\nSay {field}", f"field {field},", "{{")


# -- 3. --param values and request bodies: strict JSON only ------------------------------------


def test_param_nested_deeper_than_the_stack_is_refused(shell, compass_server):
    deep = "[" * 5000 + "]" * 5000
    refused(shell, compass_server, f"%%compass --param user='{deep}'\nHi", "--param user", f"{MAX_JSON_DEPTH} levels")


def test_param_nested_over_the_cap_is_refused(shell, compass_server):
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    refused(shell, compass_server, f"%%compass --param user='{deep}'\nHi", "--param user", f"{MAX_JSON_DEPTH} levels")


def test_param_unclosed_deep_json_is_refused(shell, compass_server):
    refused(shell, compass_server, "%%compass --param user='" + "[" * 5000 + "'\nHi", "--param user", "levels")


@pytest.mark.parametrize(
    "param, words",
    [
        ("""thinking='{"type":"disabled","x":NaN}'""", ("--param thinking", "NaN", "JSON has no NaN")),
        ("""logit_bias='{"1": -Infinity}'""", ("--param logit_bias", "-Infinity", "JSON has no NaN")),
        ("temperature=NaN", ("--param temperature", "NaN")),
    ],
)
def test_param_nan_and_infinity_are_refused(shell, compass_server, param, words):
    refused(shell, compass_server, f"%%compass --param {param}\nHi", *words)


def test_param_integer_too_long_for_python_is_refused(shell, compass_server):
    refused(shell, compass_server, "%%compass --param random_seed=" + "9" * 5000 + "\nHi", "--param random_seed")


def test_param_from_a_variable_is_checked_as_json(shell, compass_server):
    ok(shell, "deep = []\nfor _i in range(5000):\n    deep = [deep]\nloop = []\nloop.append(loop)\ntags = {'a', 'b'}")
    refused(shell, compass_server, "%%compass --param user=@deep\nHi", "user", "nested more than")
    refused(shell, compass_server, "%%compass --param documents=@loop\nHi", "documents", "contains itself")
    refused(shell, compass_server, "%%compass --param metadata=@tags\nHi", "metadata", "set", "JSON cannot represent")


def test_nan_in_a_cell_option_is_refused(shell, compass_server):
    refused(shell, compass_server, "%%compass -t nan\nHi", "temperature")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"thinking": {"type": "disabled", "x": math.inf}}, ("thinking.x", "inf", "JSON has no NaN")),
        ({"extra_body": {"meta": {"score": math.nan}}}, ("extra_body.meta.score", "nan")),
        ({"extra_body": {"tags": {1, 2}}}, ("extra_body.tags", "set", "JSON cannot represent")),
        ({"extra_body": {"obj": object()}}, ("extra_body.obj", "object")),
        ({"extra_body": {"raw": b"bytes"}}, ("extra_body.raw", "bytes")),
        ({"extra_body": {"m": {(1, 2): "x"}}}, ("extra_body.m", "key of type tuple")),
        ({"extra_body": {"big": 10**5000}}, ("extra_body.big", "whole number")),
        ({"user": "broken \ud800 surrogate"}, ("user", "surrogate")),
        ({"extra_body": ["not", "a", "dict"]}, ("extra_body must be a dict",)),
    ],
)
def test_chat_refuses_bodies_that_are_not_strict_json(compass_server, kwargs, words):
    cj.chat("First")
    refused_call(compass_server, lambda: cj.chat("Hi", **kwargs), *words)


def test_chat_refuses_deep_and_self_containing_values(compass_server):
    cj.chat("First")
    deep: list = []
    for _ in range(20_000):  # far past the interpreter's recursion limit
        deep = [deep]
    refused_call(compass_server, lambda: cj.chat("Hi", user=deep), "user", f"more than {MAX_JSON_DEPTH} levels")
    loop: dict = {}
    loop["self"] = loop
    refused_call(compass_server, lambda: cj.chat("Hi", extra_body={"loop": loop}), "extra_body", "contains itself")


def test_messages_never_quote_the_key(compass_server):
    cj.chat("First")
    key = compass_server.key
    refused_call(compass_server, lambda: cj.chat("Hi", extra_body={"meta": {key: math.nan}}), "extra_body.meta", "NaN")


def test_build_body_checks_json_before_any_other_rule():
    deep: list = []
    for _ in range(20_000):
        deep = [deep]
    # temperature's own rule would repr() the value, which a value this deep turns into a RecursionError.
    with pytest.raises(ValidationError, match="temperature is nested more than"):
        build_body(model="gpt-4o", messages=USER, stream=False, fields={"temperature": deep})
    with pytest.raises(ValidationError, match=r"messages\[0\]\.content is nan"):
        build_body(model="gpt-4o", messages=[{"role": "user", "content": math.nan}], stream=False, fields={})


def test_json_depth_cap_is_exact_and_shared_values_are_cheap():
    value: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH):
        value = [value]
    check_json(value, "ok")  # exactly the cap passes
    with pytest.raises(ValidationError, match="nested more than"):
        check_json([value], "too_deep")
    shared: Any = 1
    for _ in range(60):  # 2**60 paths, 60 distinct lists: must finish at once
        shared = [shared, shared]
    check_json(shared, "shared")


# -- 4. --audio: capped, sized before it is read ---------------------------------------------


def _sparse_wav(path: pathlib.Path, size: int) -> pathlib.Path:
    with open(path, "wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", size - 8) + b"WAVEfmt ")
        fh.truncate(size)  # sparse: no disk space, no time
    return path


def test_audio_over_the_cap_is_refused_unread(shell, compass_server, tmp_path, monkeypatch):
    big = _sparse_wav(tmp_path / "long.wav", 300 * 1024 * 1024)
    reads: list[pathlib.Path] = []
    original = pathlib.Path.read_bytes

    def read_bytes(self: pathlib.Path) -> bytes:
        reads.append(self)
        return original(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    message = refused(
        shell, compass_server, f"%%compass --audio {big}\nTranscribe", "314,572,800 bytes", "25 MiB", "mp3"
    )
    assert "Trim or compress" in message
    assert big not in reads, "the file must be sized before it is read"


def test_audio_cap_applies_to_the_python_api(compass_server, tmp_path):
    big = _sparse_wav(tmp_path / "long.wav", MAX_AUDIO_BYTES + 1)
    cj.chat("First")
    refused_call(
        compass_server, lambda: cj.chat("Transcribe", audio_in=big), f"{MAX_AUDIO_BYTES + 1:,} bytes", "25 MiB"
    )
    assert MAX_AUDIO_BYTES == 25 * 1024 * 1024
    with pytest.raises(ValidationError, match="capped at 25 MiB"):
        audio_part(big)


# -- 5. interpolate never leaks what hides behind underscores -----------------------------------

SECRET = "s3cr3t-value-that-must-not-leak"


class Holder:
    """Holds the secret only behind underscore names; its repr and plain attributes do not show it."""

    label = "public label"

    def __init__(self) -> None:
        self._token = SECRET
        self.__dict__["__hidden__"] = SECRET
        self.rows = [1, 2, 3]

    def method(self) -> str:
        return self._token


class Vault:
    """Hands out the secret for underscore keys only."""

    def __getitem__(self, key: Any) -> str:
        return SECRET if str(key).startswith("_") else "public"


_GLOBALS: dict[str, Any] = {"KEY": SECRET}
exec("def fn():\n    return KEY", _GLOBALS)  # a function whose __globals__ hold the secret

NAMESPACE: dict[str, Any] = {
    "holder": Holder(),
    "vault": Vault(),
    "fn": _GLOBALS["fn"],
    "meth": Holder().method,
    "rows": [1, 2, 3],
    "x": "text",
    "w": 5,
    "_secret": SECRET,
    "__secret__": SECRET,
}

_NAMES = ["holder", "vault", "fn", "meth", "rows", "x", "w", "_secret", "__secret__", "_", "nope"]
_ATTRS = [
    "label",
    "rows",
    "method",
    "_token",
    "__hidden__",
    "__dict__",
    "__globals__",
    "__self__",
    "__class__",
    "__func__",
]
_KEYS = ["0", "1", "k", "KEY", "_k", "_token", "__hidden__", "-1"]
_ACCESSOR = st.sampled_from(_ATTRS).map(".{}".format) | st.sampled_from(_KEYS).map("[{}]".format)
_FIELD = st.builds(
    lambda name, path, tail: "{" + name + "".join(path) + tail + "}",
    st.sampled_from(_NAMES),
    st.lists(_ACCESSOR, max_size=4),
    st.sampled_from(["", "!r", "!s", "!x", ":>10", ":{w}", ":{holder.__dict__}", ":.2f", ":"]),
)
_NOISE = st.text(alphabet="{}[]._!:>0123456789 abhkorsx", max_size=12)
# Raw text finds the parser's corner cases; assembled fields reach real attribute walks often.
_TEXTS = _NOISE | st.lists(_FIELD | _NOISE | st.sampled_from(["{{", "}}", "{", "}"]), max_size=6).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXTS)
def test_interpolate_gives_text_or_a_validation_error_and_never_the_secret(text):
    try:
        result = interpolate(text, NAMESPACE)
    except ValidationError as exc:
        assert SECRET not in str(exc)
    else:
        assert isinstance(result, str) and SECRET not in result


@pytest.mark.parametrize(
    "text",
    [
        "{holder._token}",
        "{holder.__dict__}",
        "{holder.__hidden__}",
        "{fn.__globals__[KEY]}",
        "{meth.__self__._token}",
        "{vault[_k]}",
        "{_secret}",
        "{x:{holder.__dict__}}",
    ],
)
def test_each_path_to_the_secret_is_refused(text):
    with pytest.raises(ValidationError, match="underscore"):
        interpolate(text, NAMESPACE)


def test_the_namespace_secret_is_reachable_only_through_underscores():
    # The hypothesis test means something only if plain paths work and do not show the secret.
    assert interpolate("{holder.label} {vault[k]} {rows[1]} {holder.rows[0]}", NAMESPACE) == "public label public 2 1"
