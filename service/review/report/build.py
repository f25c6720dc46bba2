"""write_report: report.html and charts/*.png into a folder, all or nothing.
Everything is written into a temporary folder beside the target and renamed into place, so a
reader never sees a half-written report and a failure leaves the previous one untouched.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from service.review.report.charts import render_charts
from service.review.report.data import ReportInput
from service.review.report.html import render_html

REPORT_NAME = "report.html"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, blob: bytes) -> None:
    with open(path, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())  # the rename must not publish a file whose bytes are still in flight


def write_report(data: ReportInput, out_dir: str | Path, overwrite: bool = False, **options) -> Path:
    """Write the report into `out_dir` and return the path of its report.html.

    An existing non-empty `out_dir` is refused (FileExistsError) unless `overwrite`; then it is
    replaced only once the new report is complete. `options` go to render_html (hardest_n, gallery_n).
    The HTML is self-contained; charts/ holds the same charts as separate PNGs for slides and mail.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target (same filesystem), so the final rename is atomic and never a copy.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)   # mkdtemp makes it private (0700); the published report folder is for readers
    old: Path | None = None
    try:
        charts = render_charts(data)
        (tmp / "charts").mkdir()
        for name, png in charts.items():
            _write(tmp / "charts" / f"{name}.png", png)
        _write(tmp / REPORT_NAME, render_html(data, charts, **options).encode("utf-8"))
        _fsync_dir(tmp / "charts")
        _fsync_dir(tmp)
        if out.is_dir() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old)              # a directory rename onto an empty directory replaces it
        try:
            os.replace(tmp, out)
        except BaseException:
            if old is not None:
                os.replace(old, out)          # put the previous report back
                old = None
            raise
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out / REPORT_NAME
