"""`tailor corrections list | add | review | export`: stored corrections from a shell, the same store as the server.

list filters as GET /v1/corrections does (so what arrived from Label Studio is seen without curl); export
writes the approved set as a dataset folder that `tailor train --data` reads as it is.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from models.images import ImageDecodeError, read_label_map
from models.taxonomy import TaxonomyError, load_taxonomy
from service.cli.console import console, fail, open_store
from service.store.corrections import (CorrectionError, CorrectionNotFound, count_corrections, list_corrections,
                                      review, save_correction)
from service.store.export import export_approved

corrections_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Stored corrections.")


@corrections_app.command("list")
def corrections_list(status: Annotated[Optional[str], typer.Option(help="submitted, approved or rejected")] = None,
                     source: Annotated[Optional[str], typer.Option(help="labelstudio, cvat, rest or import")] = None,
                     annotator: Annotated[Optional[str], typer.Option(help="who corrected it")] = None,
                     image: Annotated[Optional[str], typer.Option(help="the photo's sha256")] = None,
                     since: Annotated[Optional[datetime], typer.Option(help="updated at or after (UTC if no zone)")]
                     = None,
                     offset: Annotated[int, typer.Option(min=0)] = 0,
                     limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """Corrections matching every filter given, by id, as GET /v1/corrections lists them."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    filters = {"status": status, "source": source, "annotator": annotator, "image": image, "since": since}
    _, store = open_store()
    with store.session() as s:
        rows, total = list_corrections(s, offset=offset, limit=limit, **filters), count_corrections(s, **filters)
        table = Table("id", "status", "source", "annotator", "updated (UTC)", "image", "vs draft",
                      title=f"{total} correction(s)")
        for c in rows:
            changed = "" if c.draft_changed_fraction is None else f"{c.draft_changed_fraction:.1%}"
            table.add_row(str(c.id), c.status, c.source, c.annotator or "", f"{c.updated_at:%Y-%m-%d %H:%M}",
                          c.image_sha256[:8], changed)
    console.print(table)


@corrections_app.command("export")
def corrections_export(dest: Annotated[Path, typer.Option(help="dataset folder to create")],
                       taxonomy: Annotated[str, typer.Option(help="taxonomy name or JSON file")] = "fashion-13",
                       overwrite: Annotated[bool, typer.Option(help="replace an existing folder")] = False) -> None:
    """Write the approved corrections as a dataset folder: images/, masks/, labels.txt (for `tailor train`)."""
    try:
        tax = load_taxonomy(taxonomy)
    except TaxonomyError as exc:
        fail(str(exc))
    _, store = open_store()
    try:
        with store.session() as s:
            result = export_approved(s, store.files, dest, tax, overwrite=overwrite)
    except CorrectionError as exc:
        fail(str(exc))
    console.print(f"exported {result.images} image(s) to {dest}"
                  + (f"; {result.skipped_other_taxonomy} approved in another taxonomy skipped"
                     if result.skipped_other_taxonomy else ""))


@corrections_app.command("add")
def corrections_add(image: Annotated[Path, typer.Argument(help="the photo (stored once by its hash)")],
                    mask: Annotated[Path, typer.Argument(help="PNG label map of class ids, the photo's size")],
                    annotator: Annotated[Optional[str], typer.Option(help="who corrected it")] = None,
                    draft: Annotated[Optional[Path], typer.Option(help="PNG label map of the draft it started from")] = None,
                    draft_model_version: Annotated[Optional[str], typer.Option(help="model that made the draft")] = None,
                    notes: Annotated[Optional[str], typer.Option(help="the annotator's notes")] = None,
                    taxonomy: Annotated[str, typer.Option(help="taxonomy name or JSON file")] = "fashion-13") -> None:
    """Store an annotator's final mask for a photo (source 'import'); prints the correction id."""
    try:
        tax = load_taxonomy(taxonomy)
        labels = read_label_map(mask)
        draft_labels = read_label_map(draft) if draft else None
        image_bytes = image.read_bytes()
    except (TaxonomyError, ImageDecodeError, OSError) as exc:
        fail(str(exc))
    settings, store = open_store()
    try:
        with store.session() as s:
            row = save_correction(s, store.files, image_bytes=image_bytes, label_map=labels, taxonomy=tax,
                                  source="import", annotator=annotator, notes=notes, draft_labels=draft_labels,
                                  draft_model_version=draft_model_version, max_pixels=settings.max_pixels)
            console.print(f"correction {row.id}: {image.name} by {annotator or 'unknown'} ({row.status})")
    except CorrectionError as exc:
        fail(f"{image} / {mask}: {exc}")


@corrections_app.command("review")
def corrections_review(correction_id: Annotated[int, typer.Argument(help="correction id")],
                       status: Annotated[str, typer.Option(help="approved, rejected or submitted")],
                       reviewer: Annotated[str, typer.Option(help="who reviewed it")],
                       notes: Annotated[Optional[str], typer.Option(help="the reviewer's notes")] = None) -> None:
    """Approve or reject a correction (or reopen it)."""
    _, store = open_store()
    try:
        with store.session() as s:
            row = review(s, correction_id, status, reviewer, notes)
            console.print(f"correction {row.id}: {row.status} by {row.reviewer}")
    except (CorrectionError, CorrectionNotFound) as exc:
        fail(str(exc))
