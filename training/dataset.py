"""A dataset is a folder: images/ (JPEG/PNG), masks/ (PNG label maps, same stem and size), labels.txt.

Scanning checks the pairing and the labels before anything trains; loading applies the taxonomy's
mapping so every consumer sees class ids. The train/val split is a pure function of the image id.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.images import ImageDecodeError, decode_image, read_label_map
from models.taxonomy import Taxonomy

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
IGNORE = 255  # a mask value the loss and the scores skip: padding, and pixels a teacher was unsure of


class DatasetError(ValueError):
    """The folder is not a usable dataset; the message names the offending file."""


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    mask: Path | None


@dataclass
class DatasetFolder:
    root: Path
    labels: list[str]
    samples: list[Sample]

    def split(self, val_percent: float) -> tuple[list[Sample], list[Sample]]:
        """Deterministic split by image id: an image stays on its side as the folder grows."""
        train, val = [], []
        for s in self.samples:
            (val if split_bucket(s.id) < val_percent else train).append(s)
        return train, val

    def fingerprint(self) -> str:
        """sha256 over every image and mask file's bytes (in id order) and labels.txt."""
        h = hashlib.sha256("\n".join(self.labels).encode())
        for s in self.samples:
            h.update(s.id.encode())
            for path in (s.image, s.mask):
                if path is not None:
                    h.update(hashlib.sha256(path.read_bytes()).digest())
        return h.hexdigest()


def split_bucket(image_id: str) -> float:
    """A stable number in [0, 100) derived from the id alone."""
    return int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "big") % 10000 / 100.0


def read_labels(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: labels.txt is missing")
    labels = [line.strip() for line in path.read_text().splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels or any(not lab for lab in labels):
        raise DatasetError(f"{path}: needs one non-empty label name per line")
    return labels


def scan_dataset(root: Path | str, require_masks: bool = True) -> DatasetFolder:
    """Pair images with masks by stem; an unpaired file on either side is an error naming it."""
    root = Path(root)
    image_dir, mask_dir = root / "images", root / "masks"
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: no images/ folder in the dataset")
    images = _by_stem(image_dir, IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"{image_dir}: contains no .jpg/.jpeg/.png images")
    masks = _by_stem(mask_dir, {".png"}) if mask_dir.is_dir() else {}
    if require_masks:
        if not mask_dir.is_dir():
            raise DatasetError(f"{mask_dir}: no masks/ folder in the dataset")
        for stem in sorted(images.keys() - masks.keys()):
            raise DatasetError(f"{images[stem]}: image has no mask (expected {mask_dir / (stem + '.png')})")
        for stem in sorted(masks.keys() - images.keys()):
            raise DatasetError(f"{masks[stem]}: mask has no image in {image_dir}")
    labels = read_labels(root / "labels.txt") if require_masks or masks else []
    samples = [Sample(stem, images[stem], masks.get(stem)) for stem in sorted(images)]
    return DatasetFolder(root, labels, samples)


def _by_stem(folder: Path, suffixes: set[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            if path.stem in found:
                raise DatasetError(f"{path}: two files share the id {path.stem!r} ({found[path.stem].name})")
            found[path.stem] = path
    return found


def write_downscaled_copy(src: Path, dst: Path, ids: list[str], scale: float) -> Path:
    """Copy the photos and masks of `ids` from dataset `src` into a new folder `dst`, resized by `scale`.

    Masks are resized with nearest neighbour so that they keep valid label ids. For quick runs (tests,
    demonstrations) on real photos at a fraction of the cost.
    """
    import shutil

    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    shutil.copy(src / "labels.txt", dst / "labels.txt")
    for i in ids:
        with Image.open(src / "images" / f"{i}.jpg") as im:
            size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
            im.convert("RGB").resize(size, Image.BILINEAR).save(dst / "images" / f"{i}.jpg", quality=92)
        with Image.open(src / "masks" / f"{i}.png") as m:
            m.resize(size, Image.NEAREST).save(dst / "masks" / f"{i}.png")
    return dst


def load_pair(sample: Sample, lut: np.ndarray, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one image (upright RGB) and its mask mapped to class ids, checking size and ids."""
    try:
        image = decode_image(sample.image)
    except ImageDecodeError as exc:
        raise DatasetError(str(exc)) from None
    return image, load_mask(sample, lut, num_labels, image.shape[:2])


def load_mask(sample: Sample, lut: np.ndarray, num_labels: int, shape: tuple[int, int]) -> np.ndarray:
    """A sample's mask mapped to class ids, checked against its photo's displayed (H, W) and labels.txt."""
    assert sample.mask is not None
    try:
        raw = read_label_map(sample.mask)
    except ImageDecodeError as exc:
        raise DatasetError(str(exc)) from None
    # Masks are drawn on the displayed (upright) image; compare against that size.
    if raw.shape != tuple(shape):
        with Image.open(sample.image) as img:
            stored = img.size[::-1]
        raise DatasetError(f"{sample.mask}: mask is {raw.shape[1]}x{raw.shape[0]} but image {sample.image.name} "
                           f"is {shape[1]}x{shape[0]} (stored {stored[1]}x{stored[0]})")
    top = int(raw.max(initial=0))
    if top >= num_labels:
        bad = sorted(int(v) for v in np.unique(raw) if v >= num_labels)
        raise DatasetError(f"{sample.mask}: label ids {bad} are not in labels.txt ({num_labels} labels)")
    return lut[raw]


def load_samples(folder: DatasetFolder, samples: list[Sample], taxonomy: Taxonomy, progress=None):
    """Yield (sample, image, class-id mask) for each sample; errors name the file."""
    lut = taxonomy.lut_for_labels(folder.labels, origin=str(folder.root / "labels.txt"))
    for s in samples:
        image, mask = load_pair(s, lut, len(folder.labels))
        if progress is not None:
            progress()
        yield s, image, mask
