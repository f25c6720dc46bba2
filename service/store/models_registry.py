"""The model store: model directories copied under MODEL_STORE/<version>, one row each, and `current`.

A version's files are verified (card sha256) on registration and made read-only; they are never edited
afterwards. `current` is one row, so promoting or rolling back is a single transaction.
"""
from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.card import ModelDirError, read_card
from service.store.tables import MODEL_STATUSES, CurrentModel, ModelActivation, ModelVersion, utcnow


class ModelStoreError(ValueError):
    """A version cannot be registered or activated (unknown, altered, or a clash of versions)."""


def _copy_verified(model_dir: Path, dest: Path) -> dict:
    """Copy a model directory to `dest` through a temporary name; returns the (verified) card."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{uuid.uuid4().hex}-{dest.name}"
    try:
        tmp.mkdir()
        card = read_card(model_dir)
        for name in ["card.json", *card["files"]]:
            shutil.copyfile(model_dir / name, tmp / name)
        card = read_card(tmp, verify=True)  # checks the copy, not just the source
        for f in tmp.iterdir():
            f.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return card


def _row_from_card(card: dict, path: Path, status: str, notes: str | None) -> ModelVersion:
    parent = card.get("parent")
    tax = card["taxonomy"]
    return ModelVersion(version=card["version"], path=str(path), name=card.get("name"),
                        parent=parent.get("version") if isinstance(parent, dict) else parent,
                        taxonomy=f"{tax['name']}@{tax.get('version', 1)}", created=card.get("created"),
                        metrics=card.get("metrics") or {}, status=status, notes=notes, registered_at=utcnow())


def register_model(session: Session, store_dir: Path, model_dir: Path | str, *, status: str = "available",
                   notes: str | None = None) -> ModelVersion:
    """Copy `model_dir` into the store as its card's version (idempotent for identical files)."""
    if status not in MODEL_STATUSES:
        raise ModelStoreError(f"status must be one of {list(MODEL_STATUSES)}, got {status!r}")
    model_dir = Path(model_dir)
    try:
        card = read_card(model_dir, verify=True)
    except ModelDirError as exc:
        raise ModelStoreError(str(exc)) from None
    version = card["version"]
    if "/" in version or version.startswith("."):
        raise ModelStoreError(f"model version {version!r} cannot name a folder")
    dest = Path(store_dir).resolve() / version
    existing = session.get(ModelVersion, version)
    if dest.is_dir():
        stored = read_card(dest)
        if stored["files"] != card["files"]:
            raise ModelStoreError(f"version {version} is already in the store with different files; "
                                  "a version is never replaced")
        if existing is not None:
            return existing
        read_card(dest, verify=True)  # left by an interrupted registration: reuse only if intact
        created = False
    else:
        _copy_verified(model_dir, dest)
        created = True
    row = _row_from_card(card, dest, status, notes)
    try:
        session.add(row)
        session.commit()
    except BaseException:
        session.rollback()
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    return row


def list_models(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.registered_at, ModelVersion.version)))


def get_model(session: Session, version: str) -> ModelVersion | None:
    return session.get(ModelVersion, version)


def current(session: Session) -> CurrentModel | None:
    return session.get(CurrentModel, 1)


def current_version(session: Session) -> str | None:
    row = current(session)
    return row.version if row else None


def check_activatable(model: ModelVersion | None, version: str, force: bool, reason: str | None) -> None:
    """A rejected version goes live only when forced, with the reason recorded in the history."""
    if model is None:
        raise ModelStoreError(f"no model version {version!r} in the store")
    if model.status == "rejected" and not force:
        raise ModelStoreError(f"model version {version} was rejected; activating it needs force (and a reason)")
    if model.status == "rejected" and not (reason or "").strip():
        raise ModelStoreError(f"forcing rejected version {version} live needs a reason, kept in the history")


def set_current(session: Session, version: str, actor: str | None = None, reason: str | None = None,
                force: bool = False) -> str | None:
    """Make `version` current (one transaction, with a history row); returns the previous version."""
    model = session.get(ModelVersion, version)
    check_activatable(model, version, force, reason)
    if model.status == "rejected":
        model.status = "available"
        reason = f"forced over the promotion gate's rejection: {reason}"
    row = session.get(CurrentModel, 1)
    previous = row.version if row else None
    if row is None:
        session.add(CurrentModel(id=1, version=version, activated_at=utcnow(), activated_by=actor))
    else:
        row.version, row.activated_at, row.activated_by = version, utcnow(), actor
    if model.status == "candidate":
        model.status = "available"
    session.add(ModelActivation(version=version, previous=previous, at=utcnow(), actor=actor, reason=reason))
    session.commit()
    return previous


def set_status(session: Session, version: str, status: str, notes: str | None = None) -> ModelVersion:
    if status not in MODEL_STATUSES:
        raise ModelStoreError(f"status must be one of {list(MODEL_STATUSES)}, got {status!r}")
    model = session.get(ModelVersion, version)
    if model is None:
        raise ModelStoreError(f"no model version {version!r} in the store")
    if status == "rejected" and current_version(session) == version:
        raise ModelStoreError(f"model version {version} is serving; activate another before rejecting it")
    model.status = status
    if notes is not None:
        model.notes = notes
    session.commit()
    return model


def activations(session: Session, limit: int = 50) -> list[ModelActivation]:
    return list(session.scalars(select(ModelActivation).order_by(ModelActivation.id.desc()).limit(limit)))
