"""What every `tailor` command shares: the console, one-line failures, the settings, the store.

Errors print one line naming what was wrong (a file, a setting, the database) and exit with code 2;
settings come from the environment, a .env or TAILOR_SETTINGS_FILE, with command-line values on top.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from service.settings import Settings
from service.store.db import Store, store_from_settings
from service.store.tables import Worklist
from service.store.worklists import WorklistNotFound, get_worklist

console = Console(stderr=True)
# The columns of every progress bar: what, how far, how many, how long still.
PROGRESS = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
NameArg = Annotated[str, typer.Argument(help="worklist name or id")]


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment/.env/settings file, with command-line values on top; one-line errors."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        fail("bad settings: " + "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                                          for e in exc.errors()))
    except ValueError as exc:  # e.g. an unreadable TAILOR_SETTINGS_FILE
        fail(str(exc))


def open_store(upgrade: bool = True) -> tuple[Settings, Store]:
    """The settings and the store they name, migrated unless `upgrade` is false."""
    settings = settings_from()
    try:
        return settings, store_from_settings(settings, upgrade=upgrade)
    except Exception as exc:  # an unreachable server, a locked file: one line, not a traceback
        fail(f"cannot open the database {settings.db_url.split('@')[-1]}: {exc}")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def comma_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def worklist_or_fail(session: Session, ref: str) -> Worklist:
    try:
        return get_worklist(session, ref)
    except WorklistNotFound as exc:
        fail(str(exc))
