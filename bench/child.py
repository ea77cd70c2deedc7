"""Entry point of a benchmark child process: ``python -m bench.child module:function ARGS OUT``.

Calls ``bench.<module>.<function>(ctx, **kwargs)`` and writes its result, with this process's
peak resident memory, as JSON to OUT. Not meant to be called by hand.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str]) -> int:
    target, arg, out = argv
    from bench.common import Context, peak_rss_mb

    module, function = target.split(":")
    payload = json.loads(arg)
    ctx = Context.from_json(payload["ctx"])
    result = getattr(importlib.import_module(f"bench.{module}"), function)(ctx, **payload["kwargs"])
    result = {**result, "peak_rss_mb": peak_rss_mb()}
    Path(out).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
