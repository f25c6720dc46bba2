"""write_report: the folder it writes, refusal to clobber, and all-or-nothing on failure."""
from __future__ import annotations

import pytest

import service.review.report.build as build
from service.review.report.build import write_report


def listing(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_writes_the_html_and_every_chart(drawn, tmp_path):
    report = write_report(drawn, tmp_path / "out")
    assert report == tmp_path / "out" / "report.html"
    assert listing(tmp_path / "out") == ["charts", "charts/class_distribution.png", "charts/effort_by_class.png",
                                         "charts/effort_by_version.png", "charts/qa_flags.png", "report.html"]
    assert report.read_text().startswith("<!DOCTYPE html>") and "Drawn batch" in report.read_text()
    assert (tmp_path / "out" / "charts" / "qa_flags.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert listing(tmp_path) == ["out", *(f"out/{p}" for p in listing(tmp_path / "out"))]   # no temp left


def test_an_empty_folder_is_filled_a_full_one_refused(drawn, tmp_path):
    (tmp_path / "empty").mkdir()
    assert write_report(drawn, tmp_path / "empty").is_file()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_report(drawn, tmp_path / "full")
    assert listing(tmp_path / "full") == ["keep.txt"]
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(NotADirectoryError):
        write_report(drawn, tmp_path / "a-file")


def test_overwrite_replaces_the_previous_report(drawn, tmp_path):
    out = tmp_path / "out"
    write_report(drawn, out)
    (out / "stale.txt").write_text("from an older run")
    drawn.batch.name = "Second run"
    write_report(drawn, out, overwrite=True)
    assert "stale.txt" not in listing(out) and "Second run" in (out / "report.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failure_leaves_nothing_half_written(drawn, tmp_path, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("disk full while rendering")

    monkeypatch.setattr(build, "render_html", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(drawn, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []                 # neither the folder nor a temp beside it

    monkeypatch.undo()
    write_report(drawn, tmp_path / "old")
    before = {p: (tmp_path / "old" / p).read_bytes() for p in listing(tmp_path / "old")
              if (tmp_path / "old" / p).is_file()}
    monkeypatch.setattr(build, "render_html", broken)
    with pytest.raises(RuntimeError):
        write_report(drawn, tmp_path / "old", overwrite=True)
    assert {p: (tmp_path / "old" / p).read_bytes() for p in before} == before   # the old report is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
