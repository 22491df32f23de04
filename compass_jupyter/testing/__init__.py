"""Run notebooks and tests offline against a loopback stand-in of the Compass API.

- :class:`StandInServer` speaks the Compass chat-completions wire format
  (both the OpenAI and the Azure routes, streaming, tools, logprobs, audio,
  errors) with deterministic replies: the same request always gets the same
  answer.
- :class:`Scenario` scripts what the next request(s) get: an error status, a
  given text or tool calls, a broken or oddly shaped stream.
- ``python -m compass_jupyter.testing`` starts one from the command line and
  prints ``COMPASS_BASE_URL=...`` (and ``COMPASS_API_KEY=...``);
  ``--cassette PATH`` (``StandInServer(cassette=PATH)``) answers from a recorded
  cassette instead (see :mod:`compass_jupyter.testing.cassette_server`).
- The pytest fixture ``compass_server`` (in :mod:`compass_jupyter.testing.plugin`,
  loaded automatically when the package is installed) starts one per test and
  points the environment at it.

The server listens on 127.0.0.1 by default. Its control routes
(``/_standin/...``) need its key and refuse browsers' cross-origin requests;
a non-loopback host warns with :class:`ExposedServerWarning` (see
:mod:`compass_jupyter.testing.guard`).

Only the standard library is used here; pytest is imported by the plugin alone.
"""

from .guard import ExposedServerWarning
from .recording import RecordedRequest, max_in_window
from .scenario import Scenario
from .server import DEFAULT_MODELS, StandInServer

__all__ = ["DEFAULT_MODELS", "ExposedServerWarning", "RecordedRequest", "Scenario", "StandInServer", "max_in_window"]
