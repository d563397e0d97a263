"""The Models page's spec check: the DAG processor's bounded check (mlspec.dagbag), run in a process of its own.

The api-server runs many threads, and forking one of them is unsafe, so the page starts this module as a fresh,
single-threaded Python process (`python -m mlspec.ui.speccheck`): it reads a JSON list of [path, text] from
stdin, checks them exactly as compile_specs does (each in a forked check under the per-spec time and memory
budgets, all of them under MLSPEC_SPECS_TIME_BUDGET_S) and writes one JSON outcome per spec to stdout:
{"name", and one of "resolved" | "problems" | "crash" | "overrun"}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlspec.dagbag import check_texts


def main() -> int:
    json.dump(check_texts([(Path(path), text) for path, text in json.load(sys.stdin)]), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
