"""`tailor worklist`: the annotation team's batch from the command line, the same store as the server.

create (draft photos with the local model), assign, csv, show, set (QA status, notes, flags ticked
off), qa, effort, agreement; deliver and report write the package and the HTML summary.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress
from rich.table import Table

from models.card import ModelDirError
from service.api.schemas.worklists import WorklistInfo
from service.cli.console import (PROGRESS, JsonOpt, NameArg, comma_list, console, fail, open_store, print_json,
                                 worklist_or_fail)
from service.drafting.engine import Engine
from service.drafting.predictor import load_predictor
from service.review.worklists import assign, check_photos, draft_into, photos_in, shares, worklist_csv
from service.store.worklists import (WorklistError, WorklistNotFound, create_worklist, delete_worklist, get_item,
                                     list_worklists, update_item)

worklist_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Annotation batches: drafts, split, QA, effort, agreement, delivery, report.")


@worklist_app.command("create")
def create(name: Annotated[str, typer.Argument(help="a new, unique name for the batch")],
           photos: Annotated[list[Path], typer.Argument(help="photo files and/or folders of photos")],
           annotators: Annotated[Optional[str], typer.Option(help="comma list; the batch is split between them")] = None,
           model: Annotated[Optional[Path], typer.Option(help="model directory (default: the bundled model)")] = None,
           created_by: Annotated[Optional[str], typer.Option(help="who made the batch")] = None) -> None:
    """Draft every photo with the model, store the batch and (with --annotators) split it by effort."""
    settings, store = open_store()
    settings = settings.model_copy(update={"model_dir": model}) if model else settings
    try:
        batch = photos_in(photos)
        engine = Engine(load_predictor(settings.model_dir, settings), settings)
    except (WorklistError, ModelDirError, ValueError) as exc:
        fail(str(exc))
    try:
        _create(store, engine, settings, name, batch, annotators, created_by)
    finally:
        engine.close()


def _create(store, engine, settings, name: str, batch, annotators: Optional[str], created_by: Optional[str]) -> None:
    """Check every photo, then create, draft and split the worklist; a failure leaves no worklist behind."""
    try:
        check_photos(engine, batch)
    except WorklistError as exc:
        fail(str(exc))
    predictor = engine.predictor
    with store.session() as s:
        try:
            wl = create_worklist(s, name, predictor.version, predictor.taxonomy, comma_list(annotators),
                                 created_by)
        except WorklistError as exc:
            fail(str(exc))
        try:
            with Progress(*PROGRESS, console=console) as progress:
                task = progress.add_task("drafting", total=len(batch))
                draft_into(s, store.files, wl, batch, engine, settings.qa_thresholds,
                           progress=lambda _p: progress.advance(task))
            if wl.annotators:
                assign(s, wl, thresholds=settings.qa_thresholds)
        except BaseException as exc:
            s.rollback()
            delete_worklist(s, wl.id)   # all or nothing: no half-drafted batch stays behind
            if isinstance(exc, (WorklistError, ValueError)):
                fail(str(exc))
            raise
        console.print(f"worklist {wl.name!r} (id {wl.id}): {len(wl.items)} photos drafted by {wl.model_version}"
                      + (f", split between {', '.join(wl.annotators)}" if wl.annotators else ""))
        _print_shares(wl)


def _print_shares(wl) -> None:
    for who, t in shares(wl).items():
        console.print(f"  {who or '(unassigned)'}: {t['images']} photos, ~{t['predicted_s'] / 60:.1f} min predicted")


@worklist_app.command("assign")
def assign_cmd(name: NameArg,
               annotators: Annotated[Optional[str], typer.Option(help="comma list (default: the batch's own)")] = None,
               capacity: Annotated[Optional[str], typer.Option(help="relative speeds, e.g. 'ann=2,bob=1'")] = None) -> None:
    """(Re)split the batch so each annotator's predicted effort is about equal; hardest first."""
    settings, store = open_store()
    try:
        speeds = {k.strip(): float(v) for k, _, v in (p.partition("=") for p in comma_list(capacity))}
    except ValueError:
        fail(f"--capacity: write name=number pairs separated by commas, got {capacity!r}")
    with store.session() as s:
        wl = worklist_or_fail(s, name)
        try:
            assign(s, wl, comma_list(annotators) or None, speeds or None, settings.qa_thresholds)
        except WorklistError as exc:
            fail(str(exc))
        console.print(f"worklist {wl.name!r} split between {', '.join(wl.annotators)}")
        _print_shares(wl)


@worklist_app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """Every worklist with its size and QA status counts."""
    _, store = open_store()
    with store.session() as s:
        rows = [WorklistInfo.of(s, wl).model_dump(mode="json", exclude_unset=True) for wl in list_worklists(s)]
    if as_json:
        return print_json(rows)
    table = Table("id", "name", "photos", "model", "annotators", "QA status")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], str(r["images"]), r["model_version"], ", ".join(r["annotators"]),
                      ", ".join(f"{k} {v}" for k, v in sorted(r["qa_status"].items())))
    console.print(table)


@worklist_app.command("show")
def show(name: NameArg, as_json: JsonOpt = False) -> None:
    """The batch photo by photo: who has it, how hard, why, QA status and its correction."""
    _, store = open_store()
    with store.session() as s:
        data = WorklistInfo.of(s, worklist_or_fail(s, name), items=True).model_dump(mode="json")
    if as_json:
        return print_json(data)
    table = Table("photo", "annotator", "#", "difficulty", "effort s", "classes", "why", "QA", "correction",
                  title=f"{data['name']} ({data['images']} photos, {data['model_version']})")
    for i in sorted(data["items"], key=lambda i: (i["annotator"] or "", i["position"] or 0)):
        corr = i["correction"]
        table.add_row(i["image_id"], i["annotator"] or "", str(i["position"] or ""), f"{i['difficulty']:.3f}",
                      f"{i['predicted_effort_s']:.0f}", ", ".join(i["draft_classes"]), i["reason"],
                      i["qa_status"], f"#{corr['id']} {corr['status']}" if corr else "")
    console.print(table)


@worklist_app.command("csv")
def csv_cmd(name: NameArg,
            out: Annotated[Optional[Path], typer.Option("--out", "-o", help="file to write (default: stdout)")] = None) -> None:
    """The spreadsheet: image id, annotator, classes present, difficulty, notes, QA status."""
    _, store = open_store()
    with store.session() as s:
        text = worklist_csv(s, worklist_or_fail(s, name))
    if out is None:
        typer.echo(text, nl=False)
    else:
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)


@worklist_app.command("set")
def set_cmd(name: NameArg, image_id: Annotated[str, typer.Argument(help="the photo's id in the batch")],
            qa_status: Annotated[Optional[str], typer.Option(help="pending, passed, failed or flagged")] = None,
            notes: Annotated[Optional[str], typer.Option(help="replace the notes")] = None,
            resolve: Annotated[Optional[list[str]], typer.Option(help="flag key ticked off (repeatable)")] = None,
            annotator: Annotated[Optional[str], typer.Option(help="reassign ('' to unassign)")] = None) -> None:
    """Update one photo's QA status, notes, resolved flags or annotator."""
    _, store = open_store()
    with store.session() as s:
        wl = worklist_or_fail(s, name)
        try:
            resolved = None
            if resolve:
                resolved = list(get_item(s, wl, image_id).resolved_flags or []) + list(resolve)
            item = update_item(s, wl, image_id, qa_status=qa_status, notes=notes, resolved_flags=resolved,
                               annotator=annotator)
        except (WorklistError, WorklistNotFound) as exc:
            fail(str(exc))
        console.print(f"{wl.name}/{item.image_id}: QA {item.qa_status}, {len(item.resolved_flags)} flag(s) "
                      f"resolved{', notes: ' + item.notes if item.notes else ''}", highlight=False)
