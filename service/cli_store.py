"""`tailor db`, `tailor models` and `tailor corrections`: the store's command-line sub-apps.

Each opens the store from the same settings as the server (TAILOR_DATA_DIR, TAILOR_DATABASE_URL, ...);
heavy imports stay inside the commands so `tailor --help` remains instant.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

db_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The database: schema migrations.")
models_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Model versions in the model store.")
corrections_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Stored corrections.")


def _store(upgrade: bool = True):
    from service.cli import fail, _settings
    from service.store.db import store_from_settings

    settings = _settings()
    try:
        return settings, store_from_settings(settings, upgrade=upgrade)
    except Exception as exc:  # an unreachable server, a locked file: one line, not a traceback
        fail(f"cannot open the database {settings.db_url.split('@')[-1]}: {exc}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (the server also does this at start)."""
    from service.cli import console, fail, _settings
    from service.store.db import upgrade_to_head

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        revision = upgrade_to_head(settings.db_url)
    except Exception as exc:
        fail(f"migration failed: {exc}")
    console.print(f"database at revision {revision}")


@models_app.command("list")
def models_list() -> None:
    """Versions in the model store, oldest first; * marks the current one."""
    from rich.console import Console
    from rich.table import Table

    from service.store.models_registry import current_version, list_models

    _, store = _store()
    with store.session() as s:
        cur, rows = current_version(s), list_models(s)
    table = Table("", "version", "parent", "status", "taxonomy", "val mIoU", "registered")
    table.columns[1].no_wrap = True
    for m in rows:
        miou = m.metrics.get("miou")
        table.add_row("*" if m.version == cur else "", m.version, m.parent or "", m.status, m.taxonomy,
                      f"{miou:.4f}" if isinstance(miou, (int, float)) else "",
                      m.registered_at.strftime("%Y-%m-%d %H:%M"))
    Console().print(table)
    store.close()


@models_app.command("register")
def models_register(model_dir: Annotated[Path, typer.Argument(help="model directory (card.json, model.onnx)")],
                    status: Annotated[str, typer.Option(help="available or candidate")] = "candidate") -> None:
    """Copy a model directory into the model store under its version (not activated)."""
    from service.cli import console, fail
    from service.store.models_registry import ModelStoreError, register_model

    settings, store = _store()
    try:
        with store.session() as s:
            row = register_model(s, settings.model_store_dir, model_dir, status=status)
    except ModelStoreError as exc:
        fail(str(exc))
    console.print(f"registered {row.version} at {row.path}")


@models_app.command("activate")
def models_activate(version: Annotated[str, typer.Argument(help="a version from `tailor models list`")],
                    reason: Annotated[Optional[str], typer.Option(help="why (kept in the history)")] = None,
                    force: Annotated[bool, typer.Option(help="activate a version the promotion gate rejected "
                                                             "(needs --reason)")] = False) -> None:
    """Make VERSION current (promotion or rollback). A running server swaps to it within model_poll_s
    seconds; POST /v1/models/VERSION/activate swaps at once."""
    from models.card import ModelDirError, read_card
    from service.cli import console, fail
    from service.store.models_registry import ModelStoreError, get_model, set_current

    _, store = _store()
    try:
        with store.session() as s:
            model = get_model(s, version)
            if model is not None:
                read_card(model.path, verify=True)  # refuse a version whose files were altered
            previous = set_current(s, version, actor="cli", reason=reason, force=force)
    except (ModelStoreError, ModelDirError) as exc:
        fail(str(exc))
    console.print(f"current model: {version} (was {previous})")


@corrections_app.command("export")
def corrections_export(dest: Annotated[Path, typer.Option(help="dataset folder to create")],
                       taxonomy: Annotated[str, typer.Option(help="taxonomy name or JSON file")] = "fashion-13",
                       overwrite: Annotated[bool, typer.Option(help="replace an existing folder")] = False) -> None:
    """Write the approved corrections as a dataset folder: images/, masks/, labels.txt (for `tailor train`)."""
    from models.taxonomy import TaxonomyError, load_taxonomy
    from service.cli import console, fail
    from service.store.corrections import CorrectionError
    from service.store.export import export_approved

    try:
        tax = load_taxonomy(taxonomy)
    except TaxonomyError as exc:
        fail(str(exc))
    _, store = _store()
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
    from models.images import ImageDecodeError, read_label_map
    from models.taxonomy import TaxonomyError, load_taxonomy
    from service.cli import console, fail
    from service.store.corrections import CorrectionError, save_correction

    try:
        tax = load_taxonomy(taxonomy)
        labels = read_label_map(mask)
        draft_labels = read_label_map(draft) if draft else None
        image_bytes = image.read_bytes()
    except (TaxonomyError, ImageDecodeError, OSError) as exc:
        fail(str(exc))
    settings, store = _store()
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
    from service.cli import console, fail
    from service.store.corrections import CorrectionError, CorrectionNotFound, review

    _, store = _store()
    try:
        with store.session() as s:
            row = review(s, correction_id, status, reviewer, notes)
            console.print(f"correction {row.id}: {row.status} by {row.reviewer}")
    except (CorrectionError, CorrectionNotFound) as exc:
        fail(str(exc))
