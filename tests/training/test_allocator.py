"""The training commands restart themselves once with glibc's huge-page tunable (see training/allocator.py)."""
import os
import platform
import subprocess
import sys

import pytest

from training.allocator import TUNABLE, tunables_with_huge_pages

SCRIPT = ("import os, sys; print('start', os.getpid(), flush=True); "
          "from training.allocator import restart_with_huge_pages; restart_with_huge_pages(); "
          "print('tunables', os.environ.get('GLIBC_TUNABLES'), os.getpid(), sys.argv[1:])")


def run(env_extra: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | env_extra
    out = subprocess.run([sys.executable, "-c", SCRIPT, "--an", "argument"], env=env, capture_output=True,
                         text=True, check=True, cwd=os.getcwd())
    return out.stdout.splitlines()


def test_tunables_string_keeps_what_is_there():
    assert tunables_with_huge_pages("") == TUNABLE
    assert tunables_with_huge_pages("glibc.malloc.arena_max=2") == f"glibc.malloc.arena_max=2:{TUNABLE}"
    assert tunables_with_huge_pages("glibc.malloc.hugetlb=0") == "glibc.malloc.hugetlb=0"


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_restarts_once_with_the_tunable_same_pid_and_arguments():
    lines = run({})
    starts = [line for line in lines if line.startswith("start")]
    assert len(starts) == 2 and starts[0] == starts[1]  # executed twice, as the same process
    pid = starts[0].split()[1]
    assert lines[-1] == f"tunables {TUNABLE} {pid} ['--an', 'argument']"


def test_no_restart_when_set_or_switched_off():
    assert run({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})[1].startswith("tunables glibc.malloc.hugetlb=0")
    lines = run({"TAILOR_HUGE_PAGES": "0"})
    assert len(lines) == 2 and lines[1].startswith("tunables None")
