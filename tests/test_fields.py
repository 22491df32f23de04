"""The fields table is the one description of a request field: one row reaches everything."""

from __future__ import annotations

import pytest

from compass_jupyter import fields, snippets
from compass_jupyter._exceptions import ValidationError
from compass_jupyter.fields import FIELDS, Field
from compass_jupyter.magics.options import parse, usage
from compass_jupyter.request import build_body

USER = [{"role": "user", "content": "Hi"}]
ROW = Field("foo_level", "number", "a knob a future reference may document", 0, 1, example=0.5, flag="--foo-level", step=0.1, start=0.5)


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


def test_without_the_row_the_field_is_unknown_everywhere():
    assert "foo_level" not in FIELDS
    with pytest.raises(ValidationError, match="Unknown request field 'foo_level'"):
        build_body(model="gpt-4o", messages=USER, stream=False, fields={"foo_level": 0.25}, strict=False)
    with pytest.raises(ValidationError, match="no option '--foo-level'"):
        parse("--foo-level 0.25")


def test_every_flag_is_an_option_and_every_option_field_is_a_row():
    text = usage()
    for row in fields.flagged():
        assert row.flag in text
        assert row.name in FIELDS
