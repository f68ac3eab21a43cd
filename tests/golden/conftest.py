"""Golden tests: ``--regen-golden`` rewrites ``tests/golden/<case>.expected.json`` from the
parser's current output (review the diff).

Run: ``pytest tests/golden tests/test_golden.py --regen-golden`` (this directory must be on the
command line for pytest to register the option)."""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.expected.json from the current parser output",
    )
