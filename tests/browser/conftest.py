"""The report tests' helpers (``chromium``, ``traffic``) are importable from the tests here and
from ``bench/report.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
