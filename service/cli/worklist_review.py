"""`tailor worklist qa | effort | agreement | deliver | report`: reviewing a batch from the command line.

The same analyses as the REST routes (service.review), printed as tables or JSON; deliver and
report write folders transactionally and name the folder in any error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from service.cli.console import JsonOpt, NameArg, console, fail, open_store, print_json, worklist_or_fail
from service.review.annotator_agreement import worklist_agreement
from service.review.checklist import batch_checklist
from service.review.delivery import DeliveryError
from service.review.delivery.worklist import deliver_worklist
from service.review.effort_records import effort_records, effort_summary
from service.review.item_qa import item_qa
from service.review.report.worklist import write_worklist_report
from service.store.worklists import WorklistNotFound, get_item


def qa(name: NameArg, image_id: Annotated[Optional[str], typer.Argument(help="one photo (default: all)")] = None,
       as_json: JsonOpt = False) -> None:
    """QA checks of the current corrections: flags (where, why) and the checklist per photo and batch."""
    settings, store = open_store()
    with store.session() as s:
        wl = worklist_or_fail(s, name)
        try:
            items = [get_item(s, wl, image_id)] if image_id else list(wl.items)
        except WorklistNotFound as exc:
            fail(str(exc))
        results = [item_qa(s, store.files, i, settings.qa_thresholds) for i in items]
        done = [r for r in results if r.correction is not None]
        data = {"images": [r.to_dict() for r in results],
                "checklist": batch_checklist({r.item.image_id: r.checklist for r in done})}
    if as_json:
        return print_json(data)
    table = Table("photo", "correction", "check", "classes", "where (x0,y0,x1,y1)", "px", "severity", "state",
                  title=f"QA of {wl.name}")
    for r in data["images"]:
        if r["correction"] is None:
            table.add_row(r["image_id"], "none yet", "", "", "", "", "", "")
            continue
        corr = f"#{r['correction']['id']} {r['correction']['status']}"
        if not r["flags"]:
            table.add_row(r["image_id"], corr, "no flags", "", "", "", "", "passed")
        for f in r["flags"]:
            table.add_row(r["image_id"], corr, f["check"], "+".join(f["classes"]), ",".join(map(str, f["bbox"])),
                          str(f["area"]), f["severity"], "resolved" if f["resolved"] else "open")
    console.print(table)
    cl = data["checklist"]
    console.print(f"{cl['passed']}/{cl['images']} corrected photos pass; flags: {cl['flags_open']} open, "
                  f"{cl['flags_resolved']} resolved; failing by criterion: "
                  + ", ".join(f"{k} {v}" for k, v in cl["failing_by_criterion"].items() if v), highlight=False)


def effort(name: Annotated[Optional[str], typer.Argument(help="worklist (default: the whole store)")] = None,
           as_json: JsonOpt = False) -> None:
    """Correction effort: changed pixels, draft-vs-final IoU and boundary F, per model version and class."""
    settings, store = open_store()
    with store.session() as s:
        wl = worklist_or_fail(s, name) if name else None
        data = effort_summary(effort_records(s, store.files, worklist=wl, thresholds=settings.qa_thresholds))
    if as_json:
        return print_json(data)
    table = Table("model version", "corrections", "changed px", "mean IoU", "boundary F", title="effort by model")
    for version, row in data["by_model_version"].items():
        table.add_row(version, str(row["images"]), _pct(row["changed_fraction"]), _num(row["mean_iou"]),
                      _num(row["boundary_f"]))
    console.print(table)
    by_class = Table("class", "photos", "IoU draft vs final", "boundary F", title="effort by class")
    for cls, row in sorted(data["by_class"].items(), key=lambda kv: kv[1]["iou"]):
        by_class.add_row(cls, str(row["count"]), _num(row["iou"]), _num(row["boundary_f"]))
    console.print(by_class)


def agreement(name: NameArg, as_json: JsonOpt = False) -> None:
    """Agreement where two annotators corrected the same photo: per pair and per class."""
    settings, store = open_store()
    with store.session() as s:
        data = worklist_agreement(s, store.files, worklist_or_fail(s, name), settings.qa_thresholds)
    if as_json:
        return print_json(data)
    if not data["pairs"]:
        console.print("no photo of this worklist has corrections by two annotators yet")
        return
    table = Table("photo", "annotators", "pixels agree", "mean IoU", "boundary F")
    for p in data["pairs"]:
        table.add_row(p["image_id"], " & ".join(p["annotators"]), _pct(p["pixel_agreement"]), _num(p["mean_iou"]),
                      _num(p["boundary_f"]))
    console.print(table)
    sm = data["summary"]
    console.print(f"batch: {data['images_with_pairs']} photo(s), pixels agree {_pct(sm['pixel_agreement'])}, "
                  f"mean IoU {_num(sm['mean_iou'])}, boundary F {_num(sm['boundary_f'])}", highlight=False)


def deliver(name: NameArg, out: Annotated[Path, typer.Argument(help="package folder to create (and OUT.zip)")],
            include_unapproved: Annotated[bool, typer.Option(help="deliver photos without an approved mask, "
                                                                  "flagged")] = False,
            approved_only: Annotated[bool, typer.Option(help="leave out photos without an approved mask")] = False,
            left_right: Annotated[bool, typer.Option(help="split paired classes into the person's left/right")] = False,
            zip_: Annotated[bool, typer.Option("--zip/--no-zip", help="also write OUT.zip")] = True,
            overwrite: Annotated[bool, typer.Option(help="replace an existing package")] = False,
            report: Annotated[bool, typer.Option("--report/--no-report", help="include the batch report")] = True) -> None:
    """Write the delivery package: originals, label and colour PNGs, COCO JSON, metadata JSON/CSV, report."""
    settings, store = open_store()
    with store.session() as s:
        wl = worklist_or_fail(s, name)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                          transient=True) as progress:
                task = progress.add_task("packaging", total=len(wl.items))
                result = deliver_worklist(s, store.files, wl, out, left_right=left_right,
                                          include_unapproved=include_unapproved, approved_only=approved_only,
                                          make_zip=zip_,
                                          overwrite=overwrite, thresholds=settings.qa_thresholds, report=report,
                                          progress=lambda done, total: progress.update(task, completed=done))
        except (DeliveryError, FileExistsError, OSError) as exc:
            fail(f"{out}: {exc}")
    console.print(f"delivered {result.images} photo(s), {result.annotations} annotation(s) to {result.path}"
                  + (f" and {result.zip_path}" if result.zip_path else "")
                  + (f"; [bold yellow]{result.flagged} flagged[/] (no approved mask): {', '.join(result.flagged_ids)}"
                     if result.flagged else ""), highlight=False)


def report(name: NameArg, out: Annotated[Path, typer.Argument(help="folder for report.html and charts/")],
           overwrite: Annotated[bool, typer.Option(help="replace an existing report folder")] = False) -> None:
    """The batch summary report: one self-contained HTML file (readable offline) plus PNG charts."""
    settings, store = open_store()
    with store.session() as s:
        wl = worklist_or_fail(s, name)
        try:
            path = write_worklist_report(s, store.files, wl, out, settings.qa_thresholds, overwrite=overwrite)
        except (FileExistsError, NotADirectoryError, OSError) as exc:
            fail(f"{out}: {exc}")
    console.print(f"report: {path}", highlight=False)


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def _num(v) -> str:
    return "" if v is None else f"{v:.3f}"


def register(app: typer.Typer) -> None:
    app.command("qa")(qa)
    app.command("effort")(effort)
    app.command("agreement")(agreement)
    app.command("deliver")(deliver)
    app.command("report")(report)
