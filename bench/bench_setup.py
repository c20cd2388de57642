"""Where the benchmark finds its code: the project root (``securex``, ``crypto_utils``),
``tests/`` (the shared test machinery in ``helpers``) and ``bench/`` itself.

Every benchmark module imports this first, so each runs the same whether started
as ``python bench/relay_bench.py``, as a child process, or imported from elsewhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

for _path in (BENCH, ROOT, ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
