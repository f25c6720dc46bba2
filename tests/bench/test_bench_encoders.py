"""bench/bench_encoders.py as a smoke check: it refuses to time wrong output, so a run on one real mask
checks our encoders byte for byte against the reference libraries and prints a speed-up per row. The
ratios themselves are the benchmark's to report (README, docs/performance.md), not a test's to assert:
a loaded CI machine would make any threshold flaky.
"""
from __future__ import annotations

import re

from bench import bench_encoders
from tests.conftest import CCP


def test_encoder_benchmark_runs_on_a_real_mask(capsys):
    bench_encoders.main(["--data", str(CCP), "--masks", "1", "--reps", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if re.search(r"\d+\.\d+x\s", line)]
    assert [r.split()[0] for r in rows] == ["LS", "COCO", "COCO", "COCO"]
