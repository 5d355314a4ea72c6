"""How long validating a partnership's arrangements takes (not a test).

Validates the larger of the example arrangements once cold (the first call compiles the schema) and then
N times warm, and prints the timings in milliseconds. Target: warm well under 20 ms.

    .venv/bin/python benchmarks/validate_arrangements.py [-n 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safeguarding import arrangements  # noqa: E402

EXAMPLES = sorted((ROOT / "schemas" / "examples").glob("*.*"))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="warm runs (default 500)")
    args = parser.parse_args()

    started = time.perf_counter()
    docs = {p: arrangements.parse_document(p.read_bytes(), filename=p.name) for p in EXAMPLES}
    parse_all = time.perf_counter() - started
    path, doc = max(docs.items(), key=lambda item: len(arrangements.canonical_json(item[1])))
    size = len(arrangements.canonical_json(doc).encode())

    started = time.perf_counter()
    issues = arrangements.validate(doc)  # cold: compiles the schema and validator
    cold = time.perf_counter() - started
    if issues:
        print("\n".join(str(i) for i in issues))
        return 1

    warm: list[float] = []
    for _ in range(args.n):
        started = time.perf_counter()
        arrangements.validate(doc)
        warm.append(time.perf_counter() - started)

    text = path.read_bytes()
    loads: list[float] = []
    for _ in range(max(1, args.n // 10)):
        started = time.perf_counter()
        arrangements.load(text, filename=path.name)
        loads.append(time.perf_counter() - started)

    print(f"document        {path.relative_to(ROOT)} ({size:,} bytes as canonical JSON)")
    print(f"parse examples  {_ms(parse_all)} for {len(docs)} files (first parse)")
    print(f"cold validate   {_ms(cold)} (includes compiling the validator)")
    print(f"warm validate   n={len(warm)} mean {_ms(statistics.fmean(warm))}  "
          f"p50 {_ms(_percentile(warm, 0.5))}  p95 {_ms(_percentile(warm, 0.95))}  max {_ms(max(warm))}")
    print(f"warm load       n={len(loads)} mean {_ms(statistics.fmean(loads))}  "
          f"p50 {_ms(_percentile(loads, 0.5))} (parse + validate from {path.suffix[1:].upper()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
