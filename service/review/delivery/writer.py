"""write_package: a batch's delivery as a folder and a zip, both or neither.
Everything is built in a temporary folder beside the destination and renamed into place at the end;
on any failure the temporary files are removed and whatever was there before is left as it was.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from models.card import sha256_file
from models.images import encode_png
from models.taxonomy import Taxonomy
from service.drafting.left_right import split_left_right, split_taxonomy
from service.formats import png

from service.review.delivery import documents as docs
from service.review.delivery.items import DeliveryError, DeliveryItem, check_declared_size, check_items, checked_label_map, image_info

# Already-compressed formats are stored, not deflated again: it would cost CPU for nothing.
_STORED = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".zip", ".gz"}
CORE = ("images", "labels", "colour", "annotations.coco.json", "metadata.json", "metadata.csv", "classes.csv",
        "README.txt", "SHA256SUMS")


@dataclass
class PackageResult:
    path: Path
    zip_path: Path | None
    zip_sha256: str | None
    images: int
    flagged: int
    annotations: int
    image_ids: list[str] = field(default_factory=list)
    flagged_ids: list[str] = field(default_factory=list)
    files: int = 0                      # files in the folder (the zip holds the same)


def write_package(items: Iterable[DeliveryItem], out_dir: Path | str, taxonomy: Taxonomy, *,
                  left_right: bool = False, include_unapproved: bool = False, make_zip: bool = True,
                  zip_path: Path | str | None = None, overwrite: bool = False,
                  extras: Callable[[Path], Any] | None = None, batch: Mapping[str, Any] | None = None,
                  progress: Callable[[int, int], Any] | None = None) -> PackageResult:
    """Write the delivery package of `items` to `out_dir` (and `out_dir`.zip, or `zip_path`).

    Refused (DeliveryError, nothing written) when an item has no approved mask and `include_unapproved`
    is False, or when `out_dir` is not empty or the zip exists and `overwrite` is False. `left_right`
    splits paired classes into the person's left and right in every output. `extras(staging_dir)` may add
    files (a report) before the package is committed; `batch` is recorded in metadata.json as given.
    """
    out = Path(out_dir).absolute()
    zpath = (Path(zip_path) if zip_path else out.with_name(out.name + ".zip")).absolute() if make_zip else None
    _check_destination(out, zpath, overwrite)
    items = check_items(items, include_unapproved)

    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    tmp = out.parent / f".tmp-{tag}-{out.name}"
    tmp_zip = zpath.parent / f".tmp-{tag}-{zpath.name}" if zpath else None
    try:
        result = _stage(items, tmp, taxonomy, left_right, extras, batch, progress)
        result.path = out
        if zpath:
            zpath.parent.mkdir(parents=True, exist_ok=True)
            result.zip_sha256 = _write_zip(tmp, tmp_zip, out.name)
            result.zip_path = zpath
        _commit([(tmp, out), (tmp_zip, zpath)] if zpath else [(tmp, out)], overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp_zip is not None:
            tmp_zip.unlink(missing_ok=True)
        raise
    return result


def _check_destination(out: Path, zpath: Path | None, overwrite: bool) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DeliveryError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DeliveryError(f"{out} already exists and is not empty; choose a new folder or overwrite")
    if zpath is not None:
        if zpath.is_relative_to(out):
            raise DeliveryError(f"the zip {zpath} cannot be inside the package folder {out}")
        if zpath.is_dir():
            raise DeliveryError(f"{zpath} is a folder, not a zip file")
        if zpath.exists() and not overwrite:
            raise DeliveryError(f"{zpath} already exists; choose a new name or overwrite")


def _stage(items: list[DeliveryItem], tmp: Path, taxonomy: Taxonomy, left_right: bool,
           extras: Callable[[Path], Any] | None, batch: Mapping[str, Any] | None,
           progress: Callable[[int, int], Any] | None) -> PackageResult:
    for sub in ("images", "labels", "colour"):
        (tmp / sub).mkdir(parents=True)
    split = split_taxonomy(taxonomy) if left_right else None
    out_tax = split.taxonomy if split else taxonomy
    palette = out_tax.palette()
    classes = (docs.class_rows(out_tax, taxonomy, split.base_of, split.side_of) if split
               else docs.class_rows(out_tax))
    records: list[docs.ImageRecord] = []
    for n, it in enumerate(items, start=1):
        src = Path(it.image_path)
        w, h, suffix = image_info(src)
        check_declared_size(it, (w, h))
        data = src.read_bytes()
        file_name = f"{it.image_id}{suffix}"
        (tmp / "images" / file_name).write_bytes(data)
        lm = checked_label_map(it, taxonomy, (w, h))
        rec = docs.ImageRecord(n, it, file_name, w, h, hashlib.sha256(data).hexdigest(), None, None)
        del data
        if lm is not None:
            if split is not None:
                s = split_left_right(lm, taxonomy)
                lm = s.label_map
                rec.left_right = {"midline_x": round(s.midline, 2), "pixels": s.pixels}
            rec.label_file, rec.colour_file = f"labels/{it.image_id}.png", f"colour/{it.image_id}.png"
            (tmp / rec.label_file).write_bytes(png.encode(lm))
            (tmp / rec.colour_file).write_bytes(encode_png(png.render(lm, palette)))
            rec.annotations, rec.class_pixels = docs.annotations_for(lm, out_tax, n, rec.flagged)
        records.append(rec)
        if progress is not None:
            progress(n, len(items))

    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    flagged = [r.item.image_id for r in records if r.flagged]
    n_ann = sum(len(r.annotations) for r in records)
    tax_info = {"name": out_tax.name, "version": out_tax.version, "tag": out_tax.tag}
    info = {"description": f"Tailor delivery package ({out_tax.tag})", "version": str(docs.FORMAT_VERSION),
            "date_created": created, "taxonomy": out_tax.tag, "left_right": left_right,
            "flagged_images": len(flagged)}
    if left_right:
        info["left_right_convention"] = docs.LR_CONVENTION
    (tmp / "annotations.coco.json").write_text(docs.dumps(docs.coco_document(records, out_tax, info, classes)),
                                               encoding="utf-8")
    rows = [docs.metadata_row(r) for r in records]
    meta = {"format": "tailor-delivery", "format_version": docs.FORMAT_VERSION, "created_at": created,
            "batch": dict(batch or {}), "taxonomy": tax_info, "left_right": left_right,
            "counts": {"images": len(records), "flagged": len(flagged), "annotations": n_ann},
            "classes": classes, "images": rows}
    if left_right:
        meta["base_taxonomy"] = {"name": taxonomy.name, "version": taxonomy.version, "tag": taxonomy.tag}
        meta["left_right_convention"] = docs.LR_CONVENTION
    (tmp / "metadata.json").write_text(docs.dumps(meta), encoding="utf-8")
    (tmp / "metadata.csv").write_text(docs.metadata_csv(rows), encoding="utf-8", newline="")
    (tmp / "classes.csv").write_text(docs.classes_csv(classes), encoding="utf-8", newline="")

    if extras is not None:
        before = _fingerprint(tmp)
        extras(tmp)
        after = _fingerprint(tmp)
        # extras may only add: a report that rewrote the labels or the COCO file would ship unnoticed.
        changed = sorted(p for p, f in before.items() if after.get(p) != f)
        if changed:
            raise DeliveryError(f"extras changed or removed package files: {', '.join(changed[:10])}")
        clash = sorted({p.split("/")[0] for p in after if p not in before} & {"README.txt", "SHA256SUMS"})
        if clash:
            raise DeliveryError(f"extras wrote {', '.join(clash)}, which the package writes itself")
    added = sorted(p.name + ("/" if p.is_dir() else "") for p in tmp.iterdir() if p.name not in CORE)
    (tmp / "README.txt").write_text(docs.readme_text(meta, added), encoding="utf-8")
    files = _write_checksums(tmp)
    return PackageResult(tmp, None, None, len(records), len(flagged), n_ann, [r.item.image_id for r in records],
                         flagged, files)


def _walk(root: Path) -> list[Path]:
    """Every entry under root, sorted; links are refused, since a zip would carry what they point at."""
    entries = sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())
    for p in entries:
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            raise DeliveryError(f"package entry {p.relative_to(root)} is not a plain file or folder")
    return entries


def _fingerprint(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in _walk(root) if p.is_file()}


def _write_checksums(root: Path) -> int:
    files = [p for p in _walk(root) if p.is_file()]
    lines = [f"{sha256_file(p)}  {p.relative_to(root).as_posix()}\n" for p in files]
    (root / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")
    return len(files) + 1


def _write_zip(root: Path, dest: Path, top: str) -> str:
    """Zip `root` as `top/...` into `dest` (flushed to disk) and return its sha256."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.write(root, f"{top}/")
        for p in _walk(root):
            arc = f"{top}/{p.relative_to(root).as_posix()}"
            if p.is_dir():
                zf.write(p, arc + "/")
            else:
                zf.write(p, arc, compress_type=zipfile.ZIP_STORED if p.suffix.lower() in _STORED else None)
    # The zip is what gets sent: make sure it is on disk before its name says it is complete.
    with open(dest, "rb+") as f:
        os.fsync(f.fileno())
    return sha256_file(dest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _commit(moves: list[tuple[Path, Path]], overwrite: bool) -> None:
    """Rename each staged path to its final name; an existing one is renamed aside first and deleted only
    once every rename succeeded, so a failure part-way restores exactly what was there before."""
    aside: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for staged, final in moves:
            if final.exists() or final.is_symlink():
                # Checked again here: another writer may have created it since the first check.
                if not overwrite and not (final.is_dir() and not any(final.iterdir())):
                    raise DeliveryError(f"{final} appeared while the package was being written; nothing written")
                old = final.parent / f".old-{uuid.uuid4().hex[:12]}-{final.name}"
                os.replace(final, old)
                aside.append((final, old))
            os.replace(staged, final)
            placed.append(final)
    except BaseException:
        for final in placed:
            _remove(final)
        for final, old in reversed(aside):
            try:  # best effort, each on its own: one failed restore must not keep the others from happening
                os.replace(old, final)
            except OSError:
                pass
        raise
    for _, old in aside:
        _remove(old)
