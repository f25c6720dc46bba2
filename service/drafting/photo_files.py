"""Photos on disk: which files of a folder are drafted, their output names, and atomic writes of results.

`tailor predict` collects files and folders from the command line; batch jobs read a folder under the
server's batch_root, which nothing may leave (no '..', no symlink out). Refusals are plain errors.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from service.drafting.errors import FolderNotFound, FolderOutsideRoot, FolderRefused, TooManyPhotos

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif"}


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temp file beside `path`, then rename over it: readers never see half a file."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_name(name: str) -> str:
    """A file name made of letters, digits and '._-' from an uploaded file's name (folders dropped)."""
    base = os.path.basename(name.replace("\\", "/")) or "image"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:120]


def output_stem(relative: Path) -> str:
    """A photo's output name from its path in a folder, so same-named photos in sub-folders do not
    overwrite each other's masks: a/b.jpg -> a__b."""
    return "__".join(relative.with_suffix("").parts)


def unique_stems(stems: list[str]) -> list[str]:
    """The stems with repeats numbered (a, a-2, a-3), in order."""
    seen: dict[str, int] = {}
    out = []
    for stem in stems:
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(stem if n == 0 else f"{stem}-{n + 1}")
    return out


def collect_inputs(paths: list[Path]) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Files to draft as (path, output stem), and arguments that name nothing usable.

    Folders are searched recursively for image files; output stems keep the sub-path (output_stem).
    """
    found: list[tuple[Path, str]] = []
    missing: list[tuple[str, str]] = []
    for arg in paths:
        if arg.is_dir():
            files = sorted(p for p in arg.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                missing.append((str(arg), "folder holds no image files"))
            found += [(p, output_stem(p.relative_to(arg))) for p in files]
        elif arg.is_file():
            found.append((arg, arg.stem))
        else:
            missing.append((str(arg), "no such file or folder"))
    return list(zip([p for p, _ in found], unique_stems([s for _, s in found]))), missing


def list_folder(batch_root: Path | None, folder: str, max_files: int) -> list[tuple[str, Path]]:
    """Image files under batch_root/folder as (relative name, path); anything leaving the root is refused."""
    if batch_root is None:
        raise FolderRefused("folder jobs are disabled on this server (set TAILOR_BATCH_ROOT)")
    if "\x00" in folder:  # the OS cannot name such a path (os calls raise ValueError on it)
        raise FolderRefused("folder must not contain a NUL character")
    if not folder or Path(folder).is_absolute() or folder.startswith(("/", "\\")):
        raise FolderRefused(f"folder must be a relative path under batch_root, got {folder!r}")
    root = batch_root.resolve()
    try:
        target = (root / folder).resolve()
        if not target.is_relative_to(root):
            raise FolderOutsideRoot(f"folder {folder!r} is outside batch_root; refused")
        if not target.is_dir():
            raise FolderNotFound(f"folder {folder!r} does not exist under batch_root")
    except OSError as exc:   # a name the file system cannot hold (too long, say)
        raise FolderRefused(f"folder {folder[:200]!r}... cannot be read ({exc.strerror})") from None
    found = []
    for p in sorted(target.rglob("*")):
        # Symlinks are resolved and must stay inside the root too.
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and p.resolve().is_relative_to(root):
            found.append((str(p.relative_to(target)), p.resolve()))
    if not found:
        raise FolderRefused(f"folder {folder!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(found) > max_files:
        raise TooManyPhotos(f"folder {folder!r} holds {len(found)} images, above max_batch_files={max_files}")
    return found
