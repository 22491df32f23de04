"""Python callables as Compass tools: schemas out (:mod:`.schema`), tool calls in (:mod:`.calls`)."""

from __future__ import annotations

from .calls import ToolRun, run_tool, run_tool_calls
from .schema import resolve_tools, tool_schema

__all__ = ["ToolRun", "resolve_tools", "run_tool", "run_tool_calls", "tool_schema"]
