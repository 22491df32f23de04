"""``python -m benchmarks [--quick] [--repeat N] [--only streaming|accumulation|rendering|store|local_model|batch]``: print every table."""

from __future__ import annotations

import sys
import time
from typing import Sequence

from . import environment, parse_options


def main(argv: Sequence[str] | None = None) -> int:
    options, chosen = parse_options(argv, "python -m benchmarks", only=True)
    print(environment(), end="\n\n", flush=True)
    started = time.perf_counter()
    if "streaming" in chosen:
        from . import streaming

        streaming.run(options, out=lambda text: print(text, flush=True))
        print(flush=True)
    if "accumulation" in chosen:
        from . import accumulation

        accumulation.run(options, out=lambda text: print(text, flush=True))
        print(flush=True)
    if "rendering" in chosen:
        from . import rendering

        rendering.run(options, out=lambda text: print(text, flush=True))
    if "store" in chosen:
        from . import store

        store.run(options, out=lambda text: print(text, flush=True))
    if "local_model" in chosen:
        from . import local_model

        print(flush=True)
        local_model.run(options, out=lambda text: print(text, flush=True))
    if "batch" in chosen:
        from . import batch

        print(flush=True)
        batch.run(options, out=lambda text: print(text, flush=True))
    print(f"(benchmarks took {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
