"""Export the approved corrections of one taxonomy as a dataset folder that `tailor train` reads directly.

images/ (the stored photo bytes), masks/ (PNG label maps of class ids), labels.txt (the taxonomy's own
class names, which map to themselves) and manifest.json; built under a temporary name, then renamed.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.taxonomy import Taxonomy
from service.store.corrections import CorrectionError
from service.store.files import FileStore
from service.store.tables import Correction, utcnow


@dataclass
class ExportResult:
    path: Path
    images: int
    corrections: list[int] = field(default_factory=list)
    skipped_other_taxonomy: int = 0     # approved, but drawn in another taxonomy (or version of it)
    superseded: int = 0                 # an image with several approved corrections keeps the latest


def export_approved(session: Session, files: FileStore, dest_dir: Path | str, taxonomy: Taxonomy,
                    overwrite: bool = False, include: Callable[[str], bool] | None = None) -> ExportResult:
    """Write every approved correction of `taxonomy` to `dest_dir` (which must not exist unless overwrite).

    `include(image_sha256)`, when given, picks the photos to write (retraining splits off its evaluation set).
    """
    dest = Path(dest_dir)
    if dest.exists() and not overwrite:
        raise CorrectionError(f"{dest} already exists; choose a new folder")
    approved = list(session.scalars(select(Correction).where(Correction.status == "approved")
                                    .order_by(Correction.id)))
    mine = [c for c in approved if c.taxonomy == taxonomy.tag]
    latest: dict[str, Correction] = {}
    for c in mine:  # the most recently reviewed correction of an image wins
        prev = latest.get(c.image_sha256)
        if prev is None or (c.reviewed_at or c.updated_at, c.id) > (prev.reviewed_at or prev.updated_at, prev.id):
            latest[c.image_sha256] = c
    left_out = 0
    if include is not None:
        kept = {sha: c for sha, c in latest.items() if include(sha)}
        left_out, latest = len(latest) - len(kept), kept
    if not latest:
        raise CorrectionError(f"no approved corrections in taxonomy {taxonomy.tag} to export"
                              + (f" ({left_out} left out by the selection)" if left_out else "")
                              + (f" ({len(approved) - len(mine)} approved in other taxonomies)"
                                 if len(approved) > len(mine) else ""))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{uuid.uuid4().hex}-{dest.name}"
    try:
        (tmp / "images").mkdir(parents=True)
        (tmp / "masks").mkdir()
        (tmp / "labels.txt").write_text("\n".join(taxonomy.names) + "\n")
        chosen = sorted(latest.values(), key=lambda c: c.id)
        for c in chosen:
            stem = c.image_sha256[:20]  # content-derived: the same photo keeps its train/val side
            image_src = files.path(c.image.path)
            shutil.copyfile(image_src, tmp / "images" / f"{stem}{image_src.suffix}")
            shutil.copyfile(files.path(c.mask_path), tmp / "masks" / f"{stem}.png")
        manifest = {"taxonomy": taxonomy.tag, "exported_at": utcnow().isoformat(), "images": len(chosen),
                    "items": [{"id": c.image_sha256[:20], "correction": c.id, "image_sha256": c.image_sha256,
                               "source": c.source, "annotator": c.annotator, "reviewer": c.reviewer,
                               "draft_model_version": c.draft_model_version,
                               "draft_changed_fraction": c.draft_changed_fraction} for c in chosen]}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if dest.exists():  # overwrite: move the old folder aside first, so a reader never sees a mix
            old = dest.parent / f".old-{uuid.uuid4().hex}-{dest.name}"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(dest, len(chosen), [c.id for c in chosen], len(approved) - len(mine),
                        len(mine) - len(chosen))
