"""What Label Studio did lately, as the backend saw it: webhooks received and refused, setup checks, tasks
that got no draft. Served by GET /v1/labelstudio/status so a refused webhook or a photo Tailor cannot fetch
is seen without reading logs (Label Studio logs neither where its users look).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Activity"]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class _Count:
    count: int = 0
    last_at: str | None = None
    last: str | None = None

    def add(self, what: str | None) -> None:
        self.count += 1
        self.last_at, self.last = _now(), what

    def view(self) -> dict[str, Any]:
        return {"count": self.count, "last_at": self.last_at, "last": self.last}


@dataclass
class Activity:
    """In memory, since the process started (a restart is a fresh start, as LS calls /setup again)."""

    webhooks: _Count = field(default_factory=_Count)
    refused: _Count = field(default_factory=_Count)
    failed_tasks: _Count = field(default_factory=_Count)
    # LS shows a refused train call only as the backend's error state, until any view of its Model page
    # calls /setup again and clears it: the answer is kept here too.
    trains: _Count = field(default_factory=_Count)
    projects: dict[int, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def webhook(self, action: str | None) -> None:
        with self._lock:
            self.webhooks.add(action)

    def refusal(self, path: str, reason: str) -> None:
        with self._lock:
            self.refused.add(f"{path}: {reason}")

    def task_failed(self, task_id, reason: str) -> None:
        with self._lock:
            self.failed_tasks.add(f"task {task_id}: {reason}")

    def train(self, answer: str) -> None:
        with self._lock:
            self.trains.add(answer)

    def setup(self, project: int | None, problems: list[str], webhook: dict[str, Any] | None) -> None:
        if project is None:
            return
        with self._lock:
            self.projects[project] = {"setup_at": _now(), "ok": not problems, "problems": problems,
                                      "webhook": webhook}

    def view(self) -> dict[str, Any]:
        with self._lock:
            return {"webhooks": self.webhooks.view(), "refused": self.refused.view(),
                    "tasks_without_draft": self.failed_tasks.view(), "train_requests": self.trains.view(),
                    "projects": {str(k): dict(v) for k, v in sorted(self.projects.items())}}
