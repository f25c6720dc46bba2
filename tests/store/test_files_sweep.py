"""Staged files left by a crash are swept at startup when their writer is gone, however fresh they are;
a live writer's (this process's, or one whose name cannot tell) stay until they are an hour old.

The crash is real: a child process stages a file and dies before publishing it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from service.store.files import TMP_PREFIX, FileStore

CRASH = """
import os, sys
from service.store.files import FileStore
FileStore(sys.argv[1]).stage("images", b"half a photo", ".jpg")
os._exit(9)  # killed before the row is committed and the file renamed
"""


def _temps(files: FileStore) -> list[str]:
    return sorted(p.name for p in files.root.rglob(f"{TMP_PREFIX}*"))


def test_a_dead_writers_files_are_swept_at_once_a_live_ones_stay(tmp_path):
    files = FileStore(tmp_path)
    child = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], cwd=os.getcwd())
    assert child.returncode == 9
    (dead,) = _temps(files)
    staged = files.stage("images", b"in the middle of a save", ".jpg")     # this process: alive
    legacy = staged.final.parent / f"{TMP_PREFIX}0123abcd-{staged.final.name}"   # no writer recorded
    legacy.write_bytes(b"x")
    assert files.sweep_temps() == 1
    assert dead not in _temps(files) and len(_temps(files)) == 2
    hour_ago = time.time() - 7200
    os.utime(legacy, (hour_ago, hour_ago))
    assert files.sweep_temps() == 1 and staged.temp.exists()
    files.publish(staged)
    assert staged.final.read_bytes() == b"in the middle of a save"
