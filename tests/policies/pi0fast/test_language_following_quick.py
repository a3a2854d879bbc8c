"""benchmarks/language_following.py --quick keeps every size given on the command line, also one equal to the
parser's default (it used to compare values, so `--chunk-size=30 --quick` silently trained with 10)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def test_explicit_options_are_named_whatever_their_value(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("language_following", None)
    from language_following import explicit_options

    parser = argparse.ArgumentParser()
    parser.add_argument("--chunk-size", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--quick", action="store_true")
    argv = ["--chunk-size=30", "--steps", "20000", "--quick", "--policy.type=pi0fast"]
    assert explicit_options(parser, argv) == {"chunk_size", "steps", "quick"}
