"""`tailor refine`: one photo's draft with the clicks and strokes of a JSON file applied, offline.

Written as `tailor predict` writes drafts (masks/, coco.json, summary.csv), through the same engine and
refine code as POST /v1/refine; an unreadable edits file or a refused edit is named with its file (exit 2).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from models.card import ModelDirError
from service.api.schemas.refine import EDITS_DOC
from service.cli.console import console, fail, settings_from
from service.drafting.engine import Engine
from service.drafting.errors import PhotoRejected
from service.drafting.predictor import load_predictor
from service.drafting.refine import EditError
from service.drafting.refined import refine_file


def read_edits(path: Path) -> Any:
    """The edits of a JSON file: a list of edits, or an object with one under "edits" (a /v1/refine body)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror or exc})")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{path}: not valid JSON ({exc})")
    if isinstance(data, dict):
        if "edits" not in data:
            fail(f"{path}: a JSON object needs an \"edits\" list (or write the list itself)")
        data = data["edits"]
    return data


def refine(
    photo: Annotated[Path, typer.Argument(help="the photo to draft and refine")],
    edits: Annotated[Path, typer.Argument(help="JSON file: a list of edits, " + EDITS_DOC)],
    out: Annotated[Path, typer.Option(help="output folder: masks/, coco.json, summary.csv")],
    model: Annotated[Optional[Path], typer.Option(help="model directory (default: the bundled model)")] = None,
    backend: Annotated[Optional[str], typer.Option(help="auto, onnx or torch")] = None,
    threads: Annotated[Optional[int], typer.Option(help="inference threads")] = None,
    left_right: Annotated[bool, typer.Option("--left-right", help="split pants, legwear, socks and shoes into "
                                             "<name>_left/_right (the person's own sides)")] = False,
) -> None:
    """Draft one photo and apply clicks and strokes from a JSON file (the edits of POST /v1/refine)."""
    settings = settings_from(model_dir=model, backend=backend, threads=threads)
    raw = read_edits(edits)
    if not photo.is_file():
        fail(f"{photo}: no such file")
    try:
        predictor = load_predictor(settings.model_dir, settings)
    except (ModelDirError, ValueError, ImportError) as exc:
        fail(str(exc))
    engine = Engine(predictor, settings)
    try:
        refined = refine_file(engine, photo, raw, out, left_right)
    except EditError as exc:
        fail(f"{edits}: {exc}")
    except PhotoRejected as exc:
        fail(str(exc))
    finally:
        engine.close()
    console.print(f"{refined.edits} edit(s) changed {refined.changed_pixels} pixel(s); wrote "
                  f"{out / 'masks' / (photo.stem + '.png')}, {out / 'coco.json'} and {out / 'summary.csv'}",
                  highlight=False)
