"""Run ``q2google ARGS`` in this process, then say how many pymongo monitors are left for
the interpreter's exit to join: ``MONITORS LEFT n`` on stderr (``-1``: pymongo not used)."""

from __future__ import annotations

import sys

from q2google.cli import main

if __name__ == "__main__":
    code: int | str | None = 0
    try:
        main(sys.argv[1:])
    except SystemExit as end:
        code = end.code
    executors = getattr(sys.modules.get("pymongo.periodic_executor"), "_EXECUTORS", None)
    left = -1 if executors is None else sum(1 for ref in executors if ref() is not None)
    print(f"MONITORS LEFT {left}", file=sys.stderr)
    sys.exit(code)
