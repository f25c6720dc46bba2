"""The promotion gate: a candidate model serves only if it is not worse than the current one on held-out photos.

The evaluation set is the approved corrections whose image sha256 falls in a fixed hash bucket, so membership
never changes as corrections arrive and retraining never sees them; every decision is recorded with both scores.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select

from models.card import read_card
from models.taxonomy import Taxonomy
from service.jobs.evaluate import evaluate
from service.store import Store
from service.store.corrections import CorrectionError
from service.store.export import export_approved
from service.store.models_registry import current_version, get_model, set_current, set_status
from service.store.queue import record_promotion
from service.store.tables import Promotion, columns
from training.dataset import scan_dataset, split_bucket

log = logging.getLogger("tailor.promotion")
KEPT = ("miou", "pixel_accuracy", "per_class", "images", "model_version")


def eval_bucket(image_sha256: str) -> float:
    """A stable number in [0, 100) from the photo's content hash (salted: unrelated to the train/val split)."""
    digest = hashlib.sha256(f"tailor-eval:{image_sha256.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000 / 100.0


def in_eval_set(image_sha256: str, percent: float) -> bool:
    return eval_bucket(image_sha256) < percent


def export_eval_set(store: Store, dest: Path, taxonomy: Taxonomy, percent: float) -> int:
    """Write the evaluation set as a dataset folder; returns its photo count (0: none yet, nothing written)."""
    with store.session() as s:
        try:
            return export_approved(s, store.files, dest, taxonomy, overwrite=True,
                                   include=lambda sha: in_eval_set(sha, percent)).images
        except CorrectionError:
            return 0


def fallback_eval_set(settings, dest: Path, val_percent: float) -> tuple[int, Path | None]:
    """What the gate scores on while the evaluation set is too small: promotion_eval_data as it is, else the
    val split of retrain_base_data (retrains leave it out for this reason); (0, None) when neither is set."""
    if settings.promotion_eval_data is not None:
        return len(scan_dataset(settings.promotion_eval_data).samples), settings.promotion_eval_data
    if settings.retrain_base_data is None:
        return 0, None
    folder = scan_dataset(settings.retrain_base_data)
    val = [s for s in folder.samples if split_bucket(s.id) < val_percent]
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "images").mkdir(parents=True)
    (dest / "masks").mkdir()
    shutil.copyfile(folder.root / "labels.txt", dest / "labels.txt")
    for s in val:
        shutil.copyfile(s.image, dest / "images" / s.image.name)
        shutil.copyfile(s.mask, dest / "masks" / s.mask.name)
    return len(val), dest


@dataclass
class Verdict:
    promote: bool
    reason: str


def decide(baseline: dict, candidate: dict, *, guarded: list[str], max_class_drop: float, images: int,
           min_images: int) -> Verdict:
    """Promote only if mIoU does not drop and no guarded class drops by more than max_class_drop."""
    if images < min_images:
        return Verdict(False, f"the evaluation set has {images} photo(s), below promotion_min_eval_images="
                              f"{min_images}")
    b, c = baseline["miou"], candidate["miou"]
    if c < b:
        return Verdict(False, f"mIoU would drop from {b:.4f} to {c:.4f}")
    for name in guarded:
        before, after = baseline["per_class"].get(name), candidate["per_class"].get(name)
        if before is None:
            continue  # the class is absent from the evaluation photos: nothing to compare
        if before - after > max_class_drop:
            return Verdict(False, f"{name} IoU would drop from {before:.4f} to {after:.4f} "
                                  f"(more than {max_class_drop})")
    return Verdict(True, f"mIoU {b:.4f} -> {c:.4f}; no guarded class dropped by more than {max_class_drop}")


def _cached_scores(store: Store, version: str, fingerprint: str) -> dict | None:
    """A version's scores on this exact evaluation set from an earlier decision (evaluating is not free)."""
    with store.session() as s:
        row = s.scalars(select(Promotion).where(Promotion.eval_fingerprint == fingerprint,
                                                or_(Promotion.candidate == version, Promotion.baseline == version))
                        .order_by(Promotion.id.desc()).limit(1)).first()
    if row is None:
        return None
    return row.candidate_metrics if row.candidate == version else row.baseline_metrics


def score(model_dir: Path, data_dir: Path, settings) -> dict:
    """A model's scores on a dataset folder, drafted on CPU (ONNX Runtime) under the settings' limits."""
    result = evaluate(model_dir, data_dir, backend="onnx", threads=settings.threads, show_progress=False,
                      settings=settings)
    return {k: result[k] for k in KEPT}


def judge(store: Store, settings, candidate: str, eval_dir: Path, *, job_id: int | None = None,
          progress=lambda **_: None) -> dict:
    """Score the candidate and the current model on the evaluation set, decide, record; promote if allowed."""
    with store.session() as s:
        cand_row, baseline = get_model(s, candidate), current_version(s)
        base_row = get_model(s, baseline) if baseline else None
    if cand_row is None:
        raise ValueError(f"no model version {candidate!r} in the store")
    taxonomy = Taxonomy.from_dict(read_card(cand_row.path)["taxonomy"])
    unknown = [c for c in settings.promotion_guarded_classes if c not in taxonomy.names]
    if unknown:
        raise ValueError(f"promotion_guarded_classes {unknown} are not classes of taxonomy {taxonomy.tag}")
    progress(stage="evaluating")
    images = export_eval_set(store, eval_dir, taxonomy, settings.eval_percent)
    fallback_note = ""
    if images < settings.promotion_min_eval_images:
        percent = float(read_card(cand_row.path)["training"]["config"].get("val_percent", 10.0))
        count, folder = fallback_eval_set(settings, eval_dir.parent / "eval-fallback", percent)
        if count:
            fallback_note = (f" (scored on the fallback set {folder}, {count} photos: the evaluation set has {images}"
                             f", below promotion_min_eval_images={settings.promotion_min_eval_images})")
            eval_dir, images = folder, count
    fingerprint = scan_dataset(eval_dir).fingerprint() if images else None
    cand_scores, base_scores = {}, {}
    if images:
        cand_scores = score(Path(cand_row.path), eval_dir, settings)
        if base_row is not None:
            base_scores = _cached_scores(store, baseline, fingerprint) or score(Path(base_row.path), eval_dir, settings)
    if base_row is None:  # nothing serves yet (not reachable through the service, which seeds a model)
        verdict = Verdict(images >= settings.promotion_min_eval_images, "no current model to compare with")
    elif not images:
        verdict = Verdict(False, "the evaluation set is empty (no approved photo falls in it yet) and there is no "
                                 "fallback set (TAILOR_PROMOTION_EVAL_DATA or TAILOR_RETRAIN_BASE_DATA)")
    else:
        verdict = decide(base_scores, cand_scores, guarded=settings.promotion_guarded_classes,
                         max_class_drop=settings.promotion_max_class_drop, images=images,
                         min_images=settings.promotion_min_eval_images)
    verdict = Verdict(verdict.promote, verdict.reason + fallback_note)
    with store.session() as s:
        now_serving = current_version(s)
        if verdict.promote and now_serving != baseline:  # someone activated another version meanwhile
            verdict = Verdict(False, f"the current model changed from {baseline} to {now_serving} while judging")
        decision = "promoted" if verdict.promote else "refused"
        row = record_promotion(s, job_id=job_id, candidate=candidate, baseline=baseline, decision=decision,
                               reason=verdict.reason, candidate_metrics=cand_scores, baseline_metrics=base_scores,
                               eval_images=images, eval_fingerprint=fingerprint)
        if verdict.promote:
            set_current(s, candidate, actor=f"job {job_id}" if job_id else "promotion gate",
                        reason=f"promotion gate: {verdict.reason}")
        else:
            set_status(s, candidate, "rejected", notes=f"promotion refused: {verdict.reason}")
        out = columns(row)
    log.info("candidate %s %s: %s", candidate, decision, verdict.reason)
    return out
