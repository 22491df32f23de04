"""Usage a server did not report, counted by the client: ``Usage.counted``.

Some OpenAI-compatible servers send no usage in a stream (the local llama.cpp server
never does, whatever ``stream_options`` asks). Rather than show "not reported" and
leave the usage table without numbers, :class:`~compass_jupyter.stream.Accumulator`
counts what arrived when it finishes a reply: exactly where the stream tells (one
logprobs entry per generated token), closely where it nearly does (one content event
per token, as these servers send them), and by a stated estimate where nothing
tells (the prompt). The result is marked ``counted`` and shown as such everywhere,
never as the server's own numbers.
"""

from __future__ import annotations

import json
from typing import Any

from .reply import Reply, Usage

__all__ = ["CHARS_PER_TOKEN", "TOKENS_PER_MESSAGE", "counted_usage", "estimate_prompt_tokens"]

# The documented estimate of tokens the server did not report: about 4 characters a token
# (English text in the tokenizers of GPT-4o, Llama and SmolLM2), plus 4 tokens a message for the
# chat template's role markers. Checked against llama.cpp's own prompt counts of SmolLM2: within
# about 15% for prose with a system message; code, denser in tokens, is underestimated, and so is
# a prompt without a system message (the template then adds a default one, unseen from here).
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def _chars(value: Any) -> int:
    """Characters of the text in a message's content (a string or a list of text parts)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(p["text"]) for p in value if isinstance(p, dict) and isinstance(p.get("text"), str))
    return 0


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """About how many tokens the request's messages (and tool schemas) are (see CHARS_PER_TOKEN)."""
    messages = body.get("messages")
    messages = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    chars = 0
    for message in messages:
        chars += _chars(message.get("content"))
        calls = message.get("tool_calls")
        chars += len(json.dumps(calls, default=str)) if isinstance(calls, list) else 0
    tools = body.get("tools")
    chars += len(json.dumps(tools, default=str)) if isinstance(tools, list) else 0
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


def counted_usage(reply: Reply, content_events: int, *, whole: bool) -> Usage:
    """Usage counted by the client for a reply whose server reported none (``Usage.counted``).

    Completion tokens: the logprobs entries when every choice with content has them (one entry
    per generated token: exact); else one per content event of the stream (servers that omit
    usage, llama.cpp among them, send a token an event); for a whole (not streamed) completion
    without logprobs, the estimate of CHARS_PER_TOKEN over its text. Prompt tokens: always the
    estimate of :func:`estimate_prompt_tokens`.
    """
    answered = [c for c in reply.choices if c.text or c.reasoning or c.tool_calls or c.audio]
    if answered and all(c.logprobs for c in answered):
        completion = sum(len(c.logprobs or []) for c in answered)
    elif whole:
        chars = sum(
            len(c.text) + len(c.reasoning or "") + sum(len(t.arguments_json) for t in c.tool_calls) for c in answered
        )
        completion = -(-chars // CHARS_PER_TOKEN)
    else:
        completion = content_events
    prompt = estimate_prompt_tokens(reply.request)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion, counted=True)
