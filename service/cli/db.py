"""`tailor db upgrade`: the database's schema migrations, from a shell (the server applies them at start too)."""
from __future__ import annotations

import typer

from service.cli.console import console, fail, settings_from
from service.store.db import upgrade_to_head

db_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The database: schema migrations.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (the server also does this at start)."""
    settings = settings_from()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        revision = upgrade_to_head(settings.db_url)
    except Exception as exc:
        fail(f"migration failed: {exc}")
    console.print(f"database at revision {revision}")
