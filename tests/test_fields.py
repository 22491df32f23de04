"""The fields table is the one description of a request field: one row reaches everything."""

from __future__ import annotations

import pytest

from compass_jupyter import fields, snippets
from compass_jupyter._exceptions import ValidationError
from compass_jupyter.fields import FIELDS, Field
from compass_jupyter.magics.options import parse, usage
from compass_jupyter.playground import Playground
from compass_jupyter.request import build_body
from compass_jupyter.testing import StandInServer

USER = [{"role": "user", "content": "Hi"}]
ROW = Field(
    "foo_level",
    "number",
    "a knob a future reference may document",
    0,
    1,
    example=0.5,
    flag="--foo-level",
    step=0.1,
    start=0.5,
)


@pytest.fixture
def new_row():
    fields.register(ROW)
    yield ROW
    fields.unregister(ROW.name)


def test_a_new_row_is_validated_with_its_range(new_row):
    body, _ = build_body(model="gpt-4o", messages=USER, stream=False, fields={"foo_level": 0.25}, strict=False)
    assert body["foo_level"] == 0.25
    with pytest.raises(ValidationError, match="foo_level must be between 0 and 1 .*foo_level=0.5"):
        build_body(model="gpt-4o", messages=USER, stream=False, fields={"foo_level": 3}, strict=False)


def test_a_new_row_gets_a_magic_option_and_its_help(new_row):
    assert parse("--foo-level 0.25").fields == {"foo_level": 0.25}
    assert "--foo-level X" in usage() and "foo_level (0..1)" in usage()


def test_a_new_row_is_written_by_copy_as_cell_and_read_back(new_row):
    cell = snippets.magic_cell("gpt-4o", {"foo_level": 0.25, "temperature": 0.3}, None, "Hi")
    line = cell.splitlines()[0]
    assert "--foo-level 0.25" in line
    assert parse(line.removeprefix("%%compass")).fields == {"foo_level": 0.25, "temperature": 0.3}


def test_a_new_row_with_a_step_is_a_playground_slider_that_sends_it(new_row, compass_server: StandInServer):
    pg = Playground()
    param = pg.params["foo_level"]
    slider = param.input
    assert type(slider).__name__ == "FloatSlider"
    assert (slider.min, slider.max, slider.step, slider.value) == (0, 1, 0.1, 0.5)
    assert "foo_level: a knob a future reference may document; between 0 and 1" in param.send.tooltip
    assert "foo_level" not in pg.fields()  # untouched: the server's default applies
    slider.value = 0.7  # moving the slider ticks its "send" box
    assert param.send.value and pg.fields() == {"foo_level": 0.7}
    pg.message.value = "Hi"
    pg.send().result(timeout=15)  # no running loop: the request runs in a thread
    assert compass_server.last_request is not None
    assert compass_server.last_request.body["foo_level"] == 0.7
    cell, _ = pg.copy_as_cell()
    assert parse(cell.splitlines()[0].removeprefix("%%compass")).fields == {"foo_level": 0.7}


@pytest.mark.parametrize(
    ("row", "widget", "value", "sent"),
    [
        (
            Field("bar_count", "integer", "a count", 1, 9, example=2, flag="--bar-count", start=3),
            "BoundedIntText",
            4,
            4,
        ),
        (Field("bar_count", "integer", "a count", example=2, flag="--bar-count", start=3), "IntText", -4, -4),
        (
            Field("bar_mode", "choice", "a mode", choices=("x", "y"), example="x", flag="--bar-mode", start="x"),
            "Dropdown",
            "y",
            "y",
        ),
    ],
)
def test_new_integer_and_choice_rows_are_playground_controls(row, widget, value, sent):
    fields.register(row)
    try:
        pg = Playground()
        control = pg.params[row.name].input
        assert type(control).__name__ == widget and control.value == row.start
        if row.choices:
            assert tuple(control.options) == row.choices
        if row.low is not None:
            assert (control.min, control.max) == (row.low, row.high)
        control.value = value
        assert pg.fields() == {row.name: sent}
        assert pg.set(**{row.name: None}).fields() == {}
    finally:
        fields.unregister(row.name)


def test_a_row_without_step_or_start_gets_no_playground_control():
    assert "top_k" in FIELDS and FIELDS["top_k"].step is None and FIELDS["top_k"].start is None
    assert "top_k" not in Playground().params


def test_without_the_row_the_field_is_unknown_everywhere():
    assert "foo_level" not in FIELDS
    assert "foo_level" not in Playground().params
    with pytest.raises(ValidationError, match="Unknown request field 'foo_level'"):
        build_body(model="gpt-4o", messages=USER, stream=False, fields={"foo_level": 0.25}, strict=False)
    with pytest.raises(ValidationError, match="no option '--foo-level'"):
        parse("--foo-level 0.25")


def test_every_flag_is_an_option_and_every_option_field_is_a_row():
    text = usage()
    for row in fields.flagged():
        assert row.flag in text
        assert row.name in FIELDS
