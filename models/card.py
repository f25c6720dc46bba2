"""The model card: card.json, the self-description of a model directory.

It names the architecture and its arguments, the taxonomy, the input normalisation and size rule,
the training data, validation metrics, lineage and each file's sha256. Light module: no torch.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CARD_FILE = "card.json"
CARD_SCHEMA = 1
FP32_GRAPH = "model.onnx"
INT8_GRAPH = "model.int8.onnx"  # written by `tailor quantize` beside the fp32 graph; served on CPU when present
ARTIFACTS = (FP32_GRAPH, INT8_GRAPH, "weights.safetensors")


class ModelDirError(ValueError):
    """A model directory is incomplete, altered, or describes itself inconsistently."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_card(model_dir: Path | str, verify: bool = False) -> dict:
    """Load card.json; with `verify`, check every listed file exists and matches its sha256."""
    model_dir = Path(model_dir)
    path = model_dir / CARD_FILE
    if not path.is_file():
        raise ModelDirError(f"{model_dir}: not a model directory (no {CARD_FILE})")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelDirError(f"{path}: not valid JSON ({exc})") from None
    for key in ("version", "arch", "taxonomy", "input", "files"):
        if key not in card:
            raise ModelDirError(f"{path}: missing {key!r}")
    if verify:
        for name, digest in card["files"].items():
            f = model_dir / name
            if not f.is_file():
                raise ModelDirError(f"{f}: listed in {CARD_FILE} but missing")
            if sha256_file(f) != digest:
                raise ModelDirError(f"{f}: sha256 does not match {CARD_FILE} (file altered or truncated)")
    return card


def write_card(model_dir: Path, card: dict) -> dict:
    """Fill in file checksums and write card.json last, so a card always describes complete files."""
    card = {**card, "schema": CARD_SCHEMA,
            "files": {name: sha256_file(model_dir / name) for name in ARTIFACTS if (model_dir / name).is_file()}}
    (model_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return card


def version_of(weights_sha256: str, created: str) -> str:
    """A human-sortable version string that changes whenever the weights change."""
    return f"{created[:10].replace('-', '')}-{weights_sha256[:8]}"


@contextmanager
def staged_model_dir(out_dir: Path) -> Iterator[Path]:
    """A temporary sibling of `out_dir` to write a model directory into, renamed into place when the
    block succeeds and removed when it raises: `out_dir` is always the old directory or the new one."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; a model directory is meant to be shared
    try:
        yield tmp
        for f in tmp.iterdir():
            f.chmod(0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
