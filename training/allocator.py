"""Transparent huge pages for CPU training, set by restarting the process (glibc reads its tunables once).

A training step on CPU allocates and frees tens of megabytes of activations; with glibc's defaults each
such buffer is a fresh mapping whose 4 KB pages fault in one at a time, and a third of the CPU went to the
kernel doing that. glibc.malloc.hugetlb=1 maps them with 2 MB pages: 30x fewer faults, steps about 1.15x
faster here (bench/bench_train_step.py).
"""
from __future__ import annotations

import os
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb=1"


def tunables_with_huge_pages(current: str) -> str:
    """GLIBC_TUNABLES with the huge-page tunable added (kept as is when any hugetlb value is already set)."""
    if "glibc.malloc.hugetlb=" in current:
        return current
    return f"{current}:{TUNABLE}" if current else TUNABLE


def restart_with_huge_pages() -> None:
    """Re-execute this command line with the tunable set, once. Returns (doing nothing) where it is set
    already, off glibc, or when TAILOR_HUGE_PAGES=0. Call it first thing in a CLI entry point: the process
    is replaced, so nothing done before survives (the PID does)."""
    current = os.environ.get("GLIBC_TUNABLES", "")
    if (os.environ.get("TAILOR_HUGE_PAGES", "1") == "0" or sys.platform != "linux"
            or platform.libc_ver()[0] != "glibc" or "glibc.malloc.hugetlb=" in current):
        return
    os.environ["GLIBC_TUNABLES"] = tunables_with_huge_pages(current)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
