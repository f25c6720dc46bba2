"""bench/bench_gpu.py, the script a GPU machine runs for the serving numbers, kept working on CPU.

Its smoke mode (--device cpu) runs every code path but CUDA itself on real CCP photos; the tables
must hold one row per setting and the engine section both of its runs.
"""
from __future__ import annotations

import importlib.util

from tests.conftest import REPO


def test_gpu_benchmark_runs_as_a_smoke_check_on_cpu(ccp, capsys):
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "bench" / "bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--device", "cpu", "--data", str(ccp / "images"), "--images", "2", "--batch-sizes", "1,2",
                "--precisions", "fp32,fp16", "--repeats", "1", "--clients", "2", "--rounds", "1"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| fp32 |", "| fp16 |"))]
    assert len(rows) == 2 * 2 * 2, out  # precisions x layouts x batch sizes
    assert all(row.endswith("| 1.00000 |") for row in rows)  # nothing applied on CPU: fp32's labels
    assert "| up to 1, wait 0 ms |" in out and "micro-batching vs one image per call" in out
    assert "a smoke run" in out
