"""Label Studio annotations become corrections: the photo and the draft the annotator started from are fetched
from LS, the regions decoded to a label map, and the correction stored (approved at once when the settings
say LS's own review stands for Tailor's); runs in the background of the webhook, one at a time.
"""
from __future__ import annotations

import asyncio
import logging

from service.integrations.labelstudio import (LabelConfig, annotation_label_map, label_classes, parse_label_config,
                                              task_image_ref)
from service.integrations.labelstudio_client import Connections
from service.store.corrections import save_correction
from service.store.queue import maybe_trigger_retrain

log = logging.getLogger("tailor.labelstudio")
__all__ = ["annotation_items", "store_annotation"]


def annotation_items(payload: dict) -> list[tuple[dict, dict]]:
    """(annotation, task) pairs from ANNOTATION_CREATED/UPDATED (one) or ANNOTATIONS_CREATED (lists)."""
    anns, tasks = payload.get("annotation"), payload.get("task")
    anns = [anns] if isinstance(anns, dict) else [a for a in anns or [] if isinstance(a, dict)]
    tasks = [tasks] if isinstance(tasks, dict) else [t for t in tasks or [] if isinstance(t, dict)]
    by_id = {t.get("id"): t for t in tasks}
    out = []
    for a in anns:
        task = by_id.get(a.get("task")) or (tasks[0] if len(tasks) == 1 else None)
        if task is not None:
            out.append((a, task))
    return out


def _annotator(annotation: dict) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return None if who is None else f"labelstudio-user-{who}" if isinstance(who, int) else str(who)


async def _draft(annotation: dict, conns: Connections, conn) -> tuple[list | None, str | None]:
    """The prediction the annotator started from (its result and model version), if LS still has it."""
    pred_id = annotation.get("parent_prediction")
    if not pred_id:
        return None, None
    try:
        pred = await conns.get_json(f"/api/predictions/{int(pred_id)}", conn)
    except Exception as exc:  # the correction is stored without a draft rather than not at all
        log.info("LS prediction %s (draft of annotation %s) not fetched: %s", pred_id, annotation.get("id"), exc)
        return None, None
    return pred.get("result") or [], pred.get("model_version")


def _save(app_state, data: bytes, ref: str, annotation: dict, config: LabelConfig, pid, draft_result, draft_version):
    settings, engine, store = app_state.settings, app_state.engine, app_state.store
    if engine is None or store is None:
        raise RuntimeError("the service is shutting down")
    taxonomy = engine.predictor.taxonomy
    # Only the size is needed here (save_correction decodes the photo itself): the header says it.
    h, w = engine.shown_size(data, ref)
    classes = label_classes(config, taxonomy, settings.labelstudio_label_map)
    labels, report = annotation_label_map(annotation.get("result") or [], h, w, classes)
    draft = annotation_label_map(draft_result, h, w, classes)[0] if draft_result is not None else None
    origin = f"Label Studio project {pid}, task {annotation.get('task')}, annotation {annotation.get('id')}"
    # Approved on arrival: one transaction, so the row is never seen submitted first; a review as a
    # reviewer's would be, it counts towards retrain_every like any other approval.
    approve = "labelstudio" in settings.approve_on_arrival
    with store.session() as session:
        row = save_correction(session, store.files, image_bytes=data, label_map=labels, taxonomy=taxonomy,
                              source="labelstudio", annotator=_annotator(annotation), notes=report.notes(origin),
                              draft_labels=draft, draft_model_version=draft_version if draft is not None else None,
                              external_id=f"project/{pid}/annotation/{annotation.get('id')}",
                              max_pixels=settings.max_pixels, status="approved" if approve else "submitted",
                              reviewer="labelstudio" if approve else None,
                              review_notes="approved on arrival (TAILOR_APPROVE_ON_ARRIVAL=labelstudio)"
                              if approve else None)
        if approve:
            maybe_trigger_retrain(session, settings.retrain_every, settings.job_max_attempts)
            session.refresh(row)  # the trigger expires what the session holds; the caller reads the row after
        return row


async def store_annotation(app_state, conns: Connections, annotation: dict, task: dict, schema: str | None,
                            pid: int | None, action: str) -> None:
    """Background: fetch the image (and draft), decode the regions, save the correction; failures are logged."""
    async with conns.store_lock:
        what = f"LS {action} annotation {annotation.get('id')} (task {task.get('id')}, project {pid})"
        try:
            if annotation.get("was_cancelled"):
                log.info("%s: skipped by the annotator; not a correction", what)
                return
            config = parse_label_config(schema or "")
            conn = conns.resolve(pid)
            ref = task_image_ref(task, config)
            data = await conns.fetch_image(ref, conn)
            draft_result, draft_version = await _draft(annotation, conns, conn)
            row = await asyncio.to_thread(_save, app_state, data, ref, annotation, config, pid, draft_result,
                                          draft_version)
            log.info("%s stored as correction %s", what, row.id)
        except ValueError as exc:  # ImageUnavailable, PhotoRejected and CorrectionError are ValueErrors
            log.warning("%s not stored: %s", what, exc)
        except Exception:
            log.exception("%s not stored", what)
