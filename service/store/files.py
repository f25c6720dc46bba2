"""Content-addressed files under data_dir: images/ab/<sha256>.<ext> and masks/ab/<sha256>.png.

A file is staged under a temporary name beside its final place and renamed only after the database
row naming it is committed, so a failure leaves neither a row without a file nor a stray file.
"""
from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KINDS = ("images", "masks")
TMP_PREFIX = ".tmp-"
# A staged file's name says who writes it: this machine (a short hash of its name, as the data folder may
# be shared) and the process id, so a sweep at startup can tell a dead writer's leftovers from live work.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _owner_alive(name: str) -> bool | None:
    """Whether the process that staged `name` still runs; None when the name cannot tell (another machine,
    or a name from before owners were recorded)."""
    parts = name[len(TMP_PREFIX):].split("-", 2)
    if len(parts) < 3 or parts[0] != _HOST or not parts[1].isdigit():
        return None
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True   # PermissionError: alive, another user's
    return True


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Staged:
    sha256: str
    rel: str                 # path relative to data_dir, as stored in the database
    final: Path
    temp: Path | None        # None: the content was already stored (nothing to rename or remove)


class FileStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def rel_path(self, kind: str, sha256: str, suffix: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown file kind {kind!r}")
        # Two-level fan-out keeps folders small with many thousands of files.
        return f"{kind}/{sha256[:2]}/{sha256}{suffix}"

    def path(self, rel: str) -> Path:
        p = (self.root / rel).resolve()
        if not p.is_relative_to(self.root.resolve()):
            raise ValueError(f"{rel!r} is outside the data folder")
        return p

    def stage(self, kind: str, data: bytes, suffix: str) -> Staged:
        """Write `data` to a temporary name next to its content-addressed place (unless already there)."""
        sha = sha256_bytes(data)
        rel = self.rel_path(kind, sha, suffix)
        final = self.path(rel)
        if final.is_file() and final.stat().st_size == len(data):
            return Staged(sha, rel, final, None)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.parent / f"{TMP_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex}-{final.name}"
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return Staged(sha, rel, final, temp)

    @staticmethod
    def publish(staged: Staged) -> None:
        if staged.temp is not None:
            os.replace(staged.temp, staged.final)  # atomic; identical content if it raced another writer
            staged.temp = None

    @staticmethod
    def discard(staged: Staged) -> None:
        if staged.temp is not None:
            staged.temp.unlink(missing_ok=True)
            staged.temp = None

    def abandon(self, session, staged: list[Staged]) -> None:
        """Roll the session back and remove what was staged for it: the failure path of every write."""
        session.rollback()
        for st in staged:
            self.discard(st)

    @contextmanager
    def transaction(self, session) -> Iterator[list[Staged]]:
        """Files staged for one database transaction (append them to the yielded list): when the block
        raises, the session is rolled back and they are removed; when it ends (after its commit), they are
        renamed into place. Every write of rows that name files goes through here."""
        staged: list[Staged] = []
        try:
            yield staged
        except BaseException:
            self.abandon(session, staged)
            raise
        for st in staged:
            self.publish(st)

    def read(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()

    def sweep_temps(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files left by a killed process; returns how many were removed.

        A file whose writer (named in it) no longer runs goes at once; another process (the CLI, a worker)
        may be staging files right now, so a file of a live or unknown writer goes only once it is old.
        """
        removed, cutoff = 0, time.time() - older_than_s
        for kind in KINDS:
            base = self.root / kind
            if base.is_dir():
                for p in base.glob(f"*/{TMP_PREFIX}*"):
                    try:
                        stale = _owner_alive(p.name) is False or p.stat().st_mtime < cutoff
                    except FileNotFoundError:  # published or discarded meanwhile
                        continue
                    if stale:
                        p.unlink(missing_ok=True)
                        removed += 1
        return removed
