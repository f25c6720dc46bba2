"""Is there enough to retrain on? Asked when a retrain is requested, so that a request with too little data is
refused at once, saying how many approved photos there are and how many are needed, instead of a job that
fails minutes later in the worker on an empty split.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import select

from models.card import read_card
from service.jobs.kinds import model_path
from service.jobs.promotion import in_eval_set
from service.store.tables import Correction
from training.dataset import scan_dataset, split_bucket


@dataclass(frozen=True)
class Readiness:
    approved: int        # approved photos (distinct images)
    evaluation: int      # of them, held out for the promotion gate
    train: int           # photos of the training folder (approved outside the evaluation set, + base data) ...
    val: int             # ... and of its validation split
    needed: int          # retrain_min_approved
    reason: str | None   # None: ready

    @property
    def ok(self) -> bool:
        return self.reason is None

    def as_dict(self) -> dict:
        return asdict(self)


def val_percent(store, settings) -> float:
    """The training run's validation share: the retrain config's, else the current model's own."""
    if "val_percent" in settings.retrain_config:
        return float(settings.retrain_config["val_percent"])
    _, path = model_path(store, None)
    return float(read_card(path)["training"]["config"].get("val_percent", 10.0))


def base_ids(settings, skip_val_percent: float | None) -> list[str]:
    """Sample ids of retrain_base_data a retrain adds (its own val split left out when given)."""
    if settings.retrain_base_data is None:
        return []
    samples = scan_dataset(settings.retrain_base_data).samples
    return [s.id for s in samples if skip_val_percent is None or split_bucket(s.id) >= skip_val_percent]


def retrain_readiness(store, settings) -> Readiness:
    """Counts as the retrain job's training folder will hold them (same ids, same split), and a verdict."""
    with store.session() as s:
        shas = set(s.scalars(select(Correction.image_sha256).where(Correction.status == "approved")))
    held = {sha for sha in shas if in_eval_set(sha, settings.eval_percent)}
    usable = sorted(shas - held)
    percent = val_percent(store, settings)
    # Stems as the export names them (sha256[:20]) and as add_base_data does (base-<id>): the split is by stem.
    stems = [sha[:20] for sha in usable] + [f"base-{i}" for i in base_ids(settings, percent)]
    val = sum(split_bucket(stem) < percent for stem in stems)
    train, need = len(stems) - val, settings.retrain_min_approved
    reason = None
    if len(usable) < need:
        reason = (f"{len(usable)} approved photo(s) to train on ({len(shas)} approved, {len(held)} of them held "
                  f"out for evaluation); a retrain needs {need} (retrain_min_approved): approve "
                  f"{need - len(usable)} more")
    elif not train or not val:
        reason = (f"the {len(stems)} training photo(s) split into {train} train / {val} validation; both need "
                  "at least one: approve more photos (or set TAILOR_RETRAIN_BASE_DATA)")
    return Readiness(len(shas), len(held), train, val, need, reason)
