"""A taxonomy is data: ordered classes (id, name, colour, paired) plus maps from source-dataset labels.

Loaded from JSON under version control and validated at load time, so a bad file fails before
any training or serving starts. Light module: no torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BUILTIN_DIR = Path(__file__).parent / "taxonomies"
DEFAULT_TAXONOMY = "fashion-13"


class TaxonomyError(ValueError):
    """A taxonomy file, or a label list applied to it, is inconsistent."""


@dataclass(frozen=True)
class TaxonomyClass:
    id: int
    name: str
    color: tuple[int, int, int]
    paired: bool


@dataclass(frozen=True)
class Taxonomy:
    name: str
    version: int
    classes: tuple[TaxonomyClass, ...]
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # source -> {label: class name}
    description: str = ""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def palette(self) -> np.ndarray:
        """(num_classes, 3) uint8 colours, indexable by a label map."""
        return np.array([c.color for c in self.classes], dtype=np.uint8)

    def class_id(self, name: str) -> int:
        for c in self.classes:
            if c.name == name:
                return c.id
        raise TaxonomyError(f"taxonomy {self.tag} has no class named {name!r}")

    def lut_for_labels(self, labels: list[str], origin: str = "labels.txt") -> np.ndarray:
        """Lookup table from source label id (line number in labels.txt) to class id.

        Labels equal to this taxonomy's own class names map to themselves; otherwise the one source
        mapping that knows every label is used. An unknown label is an error naming it.
        """
        if len(set(labels)) != len(labels):
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            raise TaxonomyError(f"{origin}: duplicate label names {dupes}")
        if labels == self.names:
            mapping = {n: n for n in self.names}
        else:
            candidates = [m for m in self.sources.values() if all(lab in m for lab in labels)]
            if not candidates:
                best_name, best = min(self.sources.items(), key=lambda kv: sum(lab not in kv[1] for lab in labels),
                                      default=("", {}))
                missing = [lab for lab in labels if lab not in best]
                raise TaxonomyError(f"{origin}: labels {missing} are not mapped by taxonomy {self.tag}"
                                    + (f" (closest source mapping: {best_name!r})" if best_name else ""))
            mapping = candidates[0]
        lut = np.full(256, 255, dtype=np.uint8)  # 255 marks "id not in labels.txt"
        for source_id, label in enumerate(labels):
            lut[source_id] = self.class_id(mapping[label])
        return lut

    def to_dict(self) -> dict:
        return {
            "name": self.name, "version": self.version, "description": self.description,
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color), "paired": c.paired}
                        for c in self.classes],
            "sources": {src: _invert(m) for src, m in self.sources.items()},
        }

    @classmethod
    def from_dict(cls, data: dict, origin: str = "taxonomy") -> "Taxonomy":
        try:
            raw_classes = data["classes"]
            name, version = str(data["name"]), int(data.get("version", 1))
        except (KeyError, TypeError, ValueError) as exc:
            raise TaxonomyError(f"{origin}: missing or bad field {exc}") from None
        classes = []
        for i, c in enumerate(raw_classes):
            try:
                color = tuple(int(v) for v in c["color"])
                cls_ = TaxonomyClass(int(c["id"]), str(c["name"]), color, bool(c.get("paired", False)))
            except (KeyError, TypeError, ValueError) as exc:
                raise TaxonomyError(f"{origin}: class #{i} is malformed ({exc})") from None
            if len(color) != 3 or not all(0 <= v <= 255 for v in color):
                raise TaxonomyError(f"{origin}: class {cls_.name!r} colour must be three values 0-255")
            classes.append(cls_)
        _check_unique(origin, "class ids", [c.id for c in classes])
        _check_unique(origin, "class names", [c.name for c in classes])
        if [c.id for c in classes] != list(range(len(classes))):
            raise TaxonomyError(f"{origin}: class ids must be 0..{len(classes) - 1} in order")
        if not 2 <= len(classes) <= 255:
            raise TaxonomyError(f"{origin}: a taxonomy needs 2 to 255 classes, got {len(classes)}")
        names = {c.name for c in classes}
        sources: dict[str, dict[str, str]] = {}
        for src, groups in (data.get("sources") or {}).items():
            flat: dict[str, str] = {}
            for class_name, labels in groups.items():
                if class_name not in names:
                    raise TaxonomyError(f"{origin}: source {src!r} maps to unknown class {class_name!r}")
                for label in labels:
                    if label in flat:
                        raise TaxonomyError(f"{origin}: source {src!r} maps label {label!r} twice")
                    flat[label] = class_name
            sources[src] = flat
        return cls(name, version, tuple(classes), sources, str(data.get("description", "")))


def load_taxonomy(name_or_path: str | Path = DEFAULT_TAXONOMY) -> Taxonomy:
    """Load a built-in taxonomy by name, or any taxonomy JSON file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = BUILTIN_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))
        raise TaxonomyError(f"taxonomy {str(name_or_path)!r} not found (built-in: {known})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TaxonomyError(f"{path}: not valid JSON ({exc})") from None
    return Taxonomy.from_dict(data, origin=str(path))


def _check_unique(origin: str, what: str, values: list) -> None:
    dupes = sorted({v for v in values if values.count(v) > 1}, key=str)
    if dupes:
        raise TaxonomyError(f"{origin}: duplicate {what}: {dupes}")


def _invert(mapping: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for label, class_name in mapping.items():
        groups.setdefault(class_name, []).append(label)
    return groups
