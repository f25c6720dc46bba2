"""`tailor models list | register | activate`: the model store from a shell, the same database as the server.

A running server follows `current` within model_poll_s seconds; POST /v1/models/VERSION/activate swaps at once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from models.card import ModelDirError, read_card
from service.cli.console import console, fail, open_store
from service.store.models_registry import (ModelStoreError, current_version, get_model, list_models, register_model,
                                           set_current)

models_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Model versions in the model store.")


@models_app.command("list")
def models_list() -> None:
    """Versions in the model store, oldest first; * marks the current one."""
    _, store = open_store()
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
    settings, store = open_store()
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
    _, store = open_store()
    try:
        with store.session() as s:
            model = get_model(s, version)
            if model is not None:
                read_card(model.path, verify=True)  # refuse a version whose files were altered
            previous = set_current(s, version, actor="cli", reason=reason, force=force)
    except (ModelStoreError, ModelDirError) as exc:
        fail(str(exc))
    console.print(f"current model: {version} (was {previous})")
