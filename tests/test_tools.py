"""Python callables as tools: the schemas the model sees, and running its calls."""

import asyncio
import dataclasses
import enum
import json
import threading
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypedDict

import pytest

from compass_jupyter._exceptions import ToolError
from compass_jupyter.tools import ToolRun, resolve_tools, run_tool, run_tool_calls, tool_schema

try:
    import jsonschema
except ImportError:  # the schema-validity assertion is skipped without it
    jsonschema = None


def parameters_of(func: Any) -> dict[str, Any]:
    """The ``parameters`` schema of ``func``, checked to be a valid JSON Schema."""
    schema = tool_schema(func)
    assert schema["type"] == "function"
    assert schema["function"]["name"] == func.__name__
    params = schema["function"]["parameters"]
    assert params["type"] == "object"
    assert params["additionalProperties"] is False
    if jsonschema is not None:
        jsonschema.Draft202012Validator.check_schema(params)
    return params


def accepts(params: dict[str, Any], arguments: dict[str, Any]) -> bool:
    """Whether arguments a model might send satisfy the schema (needs jsonschema)."""
    if jsonschema is None:
        pytest.skip("jsonschema is not installed")
    return jsonschema.Draft202012Validator(params).is_valid(arguments)


def prop(func: Any, name: str) -> dict[str, Any]:
    return parameters_of(func)["properties"][name]


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    """A point on the map.

    Attributes:
        lat: Latitude in degrees.
        lon: Longitude in degrees.
    """

    lat: float
    lon: float = 0.0


class Address(TypedDict):
    street: str
    number: int


# ------------------------------------------------------------------ type mappings


def test_scalar_hints_map_to_json_types() -> None:
    def f(s: str, i: int, x: float, b: bool) -> None: ...

    params = parameters_of(f)
    assert params["properties"] == {
        "s": {"type": "string"},
        "i": {"type": "integer"},
        "x": {"type": "number"},
        "b": {"type": "boolean"},
    }
    assert params["required"] == ["s", "i", "x", "b"]
    assert accepts(params, {"s": "a", "i": 1, "x": 1.5, "b": True})
    assert not accepts(params, {"s": "a", "i": "1", "x": 1.5, "b": True})


def test_literal_becomes_enum_with_the_matching_type() -> None:
    def f(
        unit: Literal["c", "f"],
        size: Literal[1, 2, 3],
        ratio: Literal[0.5, 1],
        flag: Literal[True],
    ) -> None: ...

    params = parameters_of(f)
    assert params["properties"]["unit"] == {"type": "string", "enum": ["c", "f"]}
    assert params["properties"]["size"] == {"type": "integer", "enum": [1, 2, 3]}
    assert params["properties"]["ratio"] == {"type": "number", "enum": [0.5, 1]}
    assert params["properties"]["flag"] == {"type": "boolean", "enum": [True]}
    assert not accepts(params, {"unit": "k", "size": 1, "ratio": 1, "flag": True})


def test_enum_classes_offer_their_values() -> None:
    def f(unit: Unit, level: Level) -> None: ...

    params = parameters_of(f)
    assert params["properties"]["unit"] == {"type": "string", "enum": ["celsius", "fahrenheit"]}
    assert params["properties"]["level"] == {"type": "integer", "enum": [1, 2]}


def test_sequences_become_arrays_with_items() -> None:
    def f(
        names: list[str],
        scores: tuple[float, ...],
        ids: Sequence[int],
        pair: tuple[str, int],
        tags: set[str],
        anything: list,
    ) -> None: ...

    props = parameters_of(f)["properties"]
    assert props["names"] == {"type": "array", "items": {"type": "string"}}
    assert props["scores"] == {"type": "array", "items": {"type": "number"}}
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}}
    assert props["pair"]["prefixItems"] == [{"type": "string"}, {"type": "integer"}]
    assert props["pair"]["minItems"] == props["pair"]["maxItems"] == 2
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    assert props["anything"] == {"type": "array"}


def test_dicts_become_objects() -> None:
    def f(meta: dict, counts: dict[str, int]) -> None: ...

    props = parameters_of(f)["properties"]
    assert props["meta"] == {"type": "object"}
    assert props["counts"] == {"type": "object", "additionalProperties": {"type": "integer"}}


def test_optional_takes_the_inner_schema_and_the_default_decides_required() -> None:
    def f(a: int | None, b: int | None, c: str | None = None, d: Unit | None = None) -> None: ...

    params = parameters_of(f)
    assert params["properties"]["a"] == {"type": "integer"}
    assert params["properties"]["b"] == {"type": "integer"}
    assert params["properties"]["c"] == {"type": "string", "default": None}
    assert params["properties"]["d"]["enum"] == ["celsius", "fahrenheit"]
    assert params["required"] == ["a", "b"]


def test_union_of_several_types_is_any_of() -> None:
    def f(value: int | str) -> None: ...

    assert prop(f, "value") == {"anyOf": [{"type": "integer"}, {"type": "string"}]}


def test_defaults_are_shown_and_not_required() -> None:
    def f(city: str, days: int = 3, unit: Unit = Unit.F, tags: tuple[str, ...] = ("a",)) -> None: ...

    params = parameters_of(f)
    assert params["required"] == ["city"]
    assert params["properties"]["days"] == {"type": "integer", "default": 3}
    assert params["properties"]["unit"]["default"] == "fahrenheit"
    assert params["properties"]["tags"]["default"] == ["a"]


def test_parameters_without_hints_accept_anything_or_follow_their_default() -> None:
    def f(location, unit="fahrenheit", days=3, ratio=0.5, verbose=False, nothing=None):
        """Get the current weather in a given location"""

    props = parameters_of(f)["properties"]
    assert props["location"] == {}
    assert props["unit"] == {"type": "string", "default": "fahrenheit"}
    assert props["days"] == {"type": "integer", "default": 3}
    assert props["ratio"] == {"type": "number", "default": 0.5}
    assert props["verbose"] == {"type": "boolean", "default": False}
    assert props["nothing"] == {"default": None}


def test_any_and_annotated() -> None:
    def f(x: Any, city: Annotated[str, "The city, e.g. Paris"]) -> None: ...

    props = parameters_of(f)["properties"]
    assert props["x"] == {}
    assert props["city"] == {"type": "string", "description": "The city, e.g. Paris"}


def test_dataclass_and_typeddict_become_nested_objects() -> None:
    def f(where: Point, address: Address) -> None: ...

    params = parameters_of(f)
    where = params["properties"]["where"]
    assert where["type"] == "object"
    assert where["description"] == "A point on the map."
    assert where["required"] == ["lat"]
    assert where["properties"]["lat"] == {"type": "number", "description": "Latitude in degrees."}
    assert where["properties"]["lon"]["default"] == 0.0
    assert where["additionalProperties"] is False
    address = params["properties"]["address"]
    assert address["properties"] == {"street": {"type": "string"}, "number": {"type": "integer"}}
    assert sorted(address["required"]) == ["number", "street"]
    assert accepts(params, {"where": {"lat": 1.0}, "address": {"street": "Main", "number": 5}})
    assert not accepts(params, {"where": {"lon": 1.0}, "address": {"street": "Main", "number": 5}})


def test_bound_methods_lose_self() -> None:
    class Shop:
        def price(self, item: str) -> float:
            """Price of an item."""
            return 1.0

    params = parameters_of(Shop().price)
    assert list(params["properties"]) == ["item"]


def test_a_function_without_parameters() -> None:
    def now() -> str:
        """The current time."""
        return "noon"

    assert parameters_of(now) == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


# ---------------------------------------------------------------------- docstrings


def google(city: str, days: int = 3) -> None:
    """Get the weather forecast
    for a city.

    Uses the public weather service.

    Args:
        city: The city, e.g. "Paris".
        days (int): How many days ahead.

    Returns:
        The forecast.
    """


def numpy_style(city: str, days: int = 3) -> None:
    """Get the weather forecast.

    Parameters
    ----------
    city : str
        The city, e.g. "Paris".
    days : int, optional
        How many days ahead.
    """


def rest_style(city: str, days: int = 3) -> None:
    """Get the weather forecast.

    :param city: The city, e.g. "Paris".
    :param days: How many days ahead.
    :returns: The forecast.
    """


@pytest.mark.parametrize("func", [google, numpy_style, rest_style])
def test_docstrings_describe_the_function_and_each_parameter(func: Any) -> None:
    function = tool_schema(func)["function"]
    assert function["description"].startswith("Get the weather forecast")
    props = function["parameters"]["properties"]
    assert props["city"]["description"] == 'The city, e.g. "Paris".'
    assert props["days"]["description"] == "How many days ahead."
    assert "Returns" not in function["description"]


def test_the_long_description_follows_the_summary() -> None:
    description = tool_schema(google)["function"]["description"]
    assert description == "Get the weather forecast for a city.\n\nUses the public weather service."


def test_no_docstring_means_no_description() -> None:
    def f(x: int) -> None: ...

    function = tool_schema(f)["function"]
    assert "description" not in function
    assert "description" not in function["parameters"]["properties"]["x"]


# ---------------------------------------------------------------------- bad tools


def test_var_args_are_refused_with_the_fix() -> None:
    def f(*cities: str) -> None: ...

    with pytest.raises(ToolError) as info:
        tool_schema(f)
    message = str(info.value)
    assert "'f'" in message and "*cities" in message and "list[str]" in message


def test_var_kwargs_are_refused() -> None:
    def g(city: str, **options: Any) -> None: ...

    with pytest.raises(ToolError, match=r"'g'.*\*\*options"):
        tool_schema(g)


def test_positional_only_without_default_is_refused() -> None:
    def f(city: str, /) -> None: ...

    with pytest.raises(ToolError, match=r"'f'.*'city'.*positional-only"):
        tool_schema(f)


def test_positional_only_with_default_is_left_out() -> None:
    def f(scale: int = 2, /, *, city: str) -> None: ...

    assert list(parameters_of(f)["properties"]) == ["city"]


def test_lambdas_and_bad_names_are_refused() -> None:
    with pytest.raises(ToolError, match=r"'<lambda>'.*letters, digits"):
        tool_schema(lambda x: x)

    def f(x: int) -> None: ...

    f.__name__ = "get weather!"
    with pytest.raises(ToolError, match="get weather!"):
        tool_schema(f)


def test_unsupported_annotation_names_function_parameter_and_fix() -> None:
    class Connection:
        pass

    def query(sql: str, conn: Connection) -> None: ...

    with pytest.raises(ToolError) as info:
        tool_schema(query)
    message = str(info.value)
    assert "'query'" in message and "'conn'" in message and "Connection" in message
    assert "give it a type hint such as str/int/float/bool/Literal[...]/list[...]" in message


def test_nested_unsupported_annotation_is_refused() -> None:
    def f(when: list[bytes]) -> None: ...

    with pytest.raises(ToolError, match=r"'f'.*'when'.*bytes"):
        tool_schema(f)


def test_dict_with_non_string_keys_is_refused() -> None:
    def f(table: dict[int, str]) -> None: ...

    with pytest.raises(ToolError, match="keys are always strings"):
        tool_schema(f)


@dataclasses.dataclass
class Node:
    children: list["Node"]


def test_recursive_dataclass_is_refused() -> None:
    def f(tree: Node) -> None: ...

    with pytest.raises(ToolError, match="refers to itself"):
        tool_schema(f)


def test_unresolvable_hint_is_refused() -> None:
    def f(x: "NoSuchType") -> None: ...  # noqa: F821

    with pytest.raises(ToolError, match=r"'f'.*NoSuchType"):
        tool_schema(f)


def test_callable_without_a_name_is_refused() -> None:
    class Adder:
        def __call__(self, x: int) -> int:
            return x + 1

    with pytest.raises(ToolError, match="no __name__"):
        tool_schema(Adder())


# -------------------------------------------------------------------- resolve_tools


def weather(city: str) -> str:
    """Weather in a city."""
    return f"sunny in {city}"


def time_in(city: str) -> str:
    """Local time in a city."""
    return "noon"


def test_resolve_tools_mixes_functions_and_tool_dicts() -> None:
    external = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    schemas, functions = resolve_tools([weather, external, time_in])
    assert [s["function"]["name"] for s in schemas] == ["weather", "lookup", "time_in"]
    assert schemas[1] == external and schemas[1] is not external
    assert functions == {"weather": weather, "time_in": time_in}
    # A call to the dict tool cannot run: there is no Python behind it.
    run = run_tool(functions, "lookup", "{}")
    assert run.error is not None and "'lookup'" in run.error


def test_resolve_tools_wraps_the_bare_function_form_and_a_lone_callable() -> None:
    schemas, _ = resolve_tools([{"name": "lookup", "parameters": {"type": "object"}}])
    assert schemas == [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    schemas, functions = resolve_tools(weather)  # type: ignore[arg-type]
    assert functions == {"weather": weather}


def test_duplicate_names_are_refused() -> None:
    other = {"type": "function", "function": {"name": "weather"}}
    with pytest.raises(ToolError, match=r"Two tools are named 'weather'.*Rename"):
        resolve_tools([weather, other])


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        ({"type": "retrieval"}, "only function tools"),
        ({"type": "function", "function": {"name": "has space"}}, "'has space'"),
        (
            {"type": "function", "function": {"name": "x", "parameters": {"type": "string"}}},
            "JSON Schema object",
        ),
        (42, "42.*cannot be a tool"),
    ],
)
def test_malformed_tool_items_are_refused(item: Any, pattern: str) -> None:
    with pytest.raises(ToolError, match=pattern):
        resolve_tools([item])


# ------------------------------------------------------------------------ run_tool


def test_run_tool_calls_the_function_with_json_arguments() -> None:
    run = run_tool({"weather": weather}, "weather", '{"city": "Paris"}')
    assert isinstance(run, ToolRun)
    assert run.error is None
    assert run.result == "sunny in Paris"
    assert run.content == "sunny in Paris"  # strings go back as they are
    assert run.duration >= 0


def test_run_tool_accepts_a_dict_and_empty_arguments() -> None:
    def now() -> str:
        return "noon"

    assert run_tool({"weather": weather}, "weather", {"city": "Rome"}).result == "sunny in Rome"
    assert run_tool({"now": now}, "now", "").result == "noon"
    assert run_tool({"now": now}, "now", "{}").result == "noon"


@pytest.mark.parametrize(
    ("value", "content"),
    [
        ({"temp": 21, "unit": "°C"}, '{"temp": 21, "unit": "°C"}'),
        ([1, 2], "[1, 2]"),
        (3, "3"),
        (2.5, "2.5"),
        (True, "true"),
        (None, "null"),
        (Unit.C, '"celsius"'),
        (Point(1.0, 2.0), '{"lat": 1.0, "lon": 2.0}'),
        (b"raw", "b'raw'"),
        (float("nan"), "nan"),
    ],
)
def test_results_become_json_content_or_repr(value: Any, content: str) -> None:
    def give() -> Any:
        return value

    run = run_tool({"give": give}, "give", "{}")
    assert run.result is value
    assert run.content == content


def test_a_raising_tool_reports_type_and_message_to_the_model() -> None:
    def lookup(city: str) -> str:
        raise ValueError(f"bad city {city}")

    run = run_tool({"lookup": lookup}, "lookup", '{"city": "Atlantis"}')
    assert run.result is None
    assert run.error == "ValueError: bad city Atlantis"
    assert json.loads(run.content) == {"error": "ValueError: bad city Atlantis"}


def test_invalid_json_arguments_are_an_error_run() -> None:
    run = run_tool({"weather": weather}, "weather", '{"city": "Paris"')
    assert run.result is None
    assert "not valid JSON" in run.error and "'weather'" in run.error
    assert json.loads(run.content)["error"] == run.error


def test_arguments_that_are_not_an_object_are_an_error_run() -> None:
    run = run_tool({"weather": weather}, "weather", '["Paris"]')
    assert "must be a JSON object" in run.error


def test_unknown_tool_lists_the_tools_that_exist() -> None:
    run = run_tool({"weather": weather, "time_in": time_in}, "forecast", "{}")
    assert run.result is None
    assert "'forecast'" in run.error and "time_in, weather" in run.error
    assert json.loads(run.content) == {"error": run.error}


def test_missing_and_unexpected_arguments_say_what_the_tool_takes() -> None:
    def forecast(city: str, days: int = 3) -> str:
        return "rain"

    run = run_tool({"forecast": forecast}, "forecast", '{"town": "Paris"}')
    assert "missing required 'city'" in run.error
    assert "unexpected 'town'" in run.error
    assert "city, days (optional)" in run.error


def test_values_are_kept_as_sent() -> None:
    def echo(n: int) -> Any:
        return n

    assert run_tool({"echo": echo}, "echo", '{"n": "3"}').result == "3"


def test_enum_parameters_receive_enum_members() -> None:
    seen: list[Any] = []

    def convert(temp: float, unit: Unit, to: Unit | None = None, levels: list[Level] = []) -> str:  # noqa: B006
        seen.extend([unit, to, levels])
        return "ok"

    run = run_tool(
        {"convert": convert},
        "convert",
        '{"temp": 20, "unit": "celsius", "to": "fahrenheit", "levels": [2, 1]}',
    )
    assert run.error is None
    assert seen == [Unit.C, Unit.F, [Level.HIGH, Level.LOW]]


def test_a_bad_enum_value_lists_the_allowed_values() -> None:
    def convert(unit: Unit) -> str:
        return "ok"

    run = run_tool({"convert": convert}, "convert", '{"unit": "kelvin"}')
    assert run.result is None
    assert "'unit'" in run.error and "kelvin" in run.error
    assert '"celsius", "fahrenheit"' in run.error


def test_dataclass_parameters_receive_instances() -> None:
    def distance(a: Point, b: Point | None = None) -> float:
        b = b or Point(0.0, 0.0)
        return abs(a.lat - b.lat) + abs(a.lon - b.lon)

    run = run_tool({"distance": distance}, "distance", '{"a": {"lat": 3, "lon": 4}}')
    assert run.result == 7
    bad = run_tool({"distance": distance}, "distance", '{"a": {"latitude": 3}}')
    assert bad.error is not None and "'a'" in bad.error and "latitude" in bad.error


async def slow_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


def test_async_tool_without_a_running_loop() -> None:
    run = run_tool({"slow_double": slow_double}, "slow_double", '{"x": 21}')
    assert run.error is None and run.result == 42 and run.content == "42"


def test_async_tool_inside_a_running_loop() -> None:
    # As in a notebook cell: ipykernel's loop is running when the tool is called.
    async def cell() -> ToolRun:
        return run_tool({"slow_double": slow_double}, "slow_double", {"x": 5})

    run = asyncio.run(cell())
    assert run.error is None
    assert run.result == 10


def test_async_tool_errors_are_reported_like_sync_ones() -> None:
    async def fails() -> None:
        raise KeyError("missing")

    async def cell() -> ToolRun:
        return run_tool({"fails": fails}, "fails", "{}")

    run = asyncio.run(cell())
    assert run.error == "KeyError: 'missing'"


def test_run_tool_calls_reports_in_call_order_and_keeps_going_after_a_failure() -> None:
    order: list[str] = []

    def record(tag: str) -> str:
        order.append(tag)
        if tag == "boom":
            raise RuntimeError("exploded")
        return tag.upper()

    calls = [
        ("call_0", "record", '{"tag": "a"}'),
        ("call_1", "record", '{"tag": "boom"}'),
        ("call_2", "nope", "{}"),
        ("call_3", "record", {"tag": "b"}),
    ]
    runs = run_tool_calls({"record": record}, calls)
    assert order == ["a", "boom", "b"]
    assert [r.result for r in runs] == ["A", None, None, "B"]
    assert runs[1].error == "RuntimeError: exploded"
    assert "'nope'" in runs[2].error


def test_tool_calls_run_in_the_calling_thread() -> None:
    # Notebook tools touch notebook state; they should not hop threads when sync.
    threads: list[int] = []

    def where() -> None:
        threads.append(threading.get_ident())

    run_tool_calls({"where": where}, [("a", "where", "{}"), ("b", "where", "{}")])
    assert threads == [threading.get_ident()] * 2


def test_interrupts_are_not_swallowed() -> None:
    def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tool({"stop": stop}, "stop", "{}")
