"""The ORM tables (SQLAlchemy 2, typed): images, corrections, model versions, activations, jobs, promotions.

Every schema change is a new Alembic revision in migrations/versions; a test checks that the migrated
database and this metadata agree, so the two cannot drift apart.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SOURCES = ("labelstudio", "cvat", "rest", "import")
STATUSES = ("submitted", "approved", "rejected")
MODEL_STATUSES = ("available", "candidate", "rejected", "retired")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def columns(row: "Base") -> dict[str, Any]:
    """A row's columns by name, times as ISO 8601 text: what JSON (a job's result) and the API's models take."""
    values = {c.key: getattr(row, c.key) for c in row.__table__.columns}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out; SQLite would otherwise hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) one")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Image(Base):
    """A photo, stored once by the sha256 of its file bytes (EXIF kept; sizes are the upright ones)."""

    __tablename__ = "images"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(200))
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Correction(Base):
    """An annotator's final label map for an image, with the draft it started from and its review."""

    __tablename__ = "corrections"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_corrections_source_external_id"),
        CheckConstraint(f"source IN {SOURCES}", name="ck_corrections_source"),
        CheckConstraint(f"status IN {STATUSES}", name="ck_corrections_status"),
        Index("ix_corrections_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256", ondelete="RESTRICT"), index=True)
    mask_sha256: Mapped[str] = mapped_column(String(64))
    mask_path: Mapped[str] = mapped_column(String(200))
    taxonomy: Mapped[str] = mapped_column(String(100))            # tag, e.g. fashion-13@1
    classes: Mapped[list[int]] = mapped_column(JSON)               # class ids present in the label map
    source: Mapped[str] = mapped_column(String(20), index=True)
    external_id: Mapped[str | None] = mapped_column(String(200))
    annotator: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), default="submitted")
    reviewer: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None] = mapped_column()
    notes: Mapped[str | None] = mapped_column(Text)               # the annotator's
    review_notes: Mapped[str | None] = mapped_column(Text)        # the reviewer's
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The draft it corrected, so correction effort can be measured per model version later.
    draft_model_version: Mapped[str | None] = mapped_column(String(100), index=True)
    draft_mask_sha256: Mapped[str | None] = mapped_column(String(64))
    draft_mask_path: Mapped[str | None] = mapped_column(String(200))
    draft_changed_fraction: Mapped[float | None] = mapped_column(Float)

    image: Mapped[Image] = relationship(lazy="joined")


class ModelVersion(Base):
    """A model directory copied into the model store under its version; never edited afterwards."""

    __tablename__ = "model_versions"
    __table_args__ = (CheckConstraint(f"status IN {MODEL_STATUSES}", name="ck_model_versions_status"),)

    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    path: Mapped[str] = mapped_column(String(500))
    parent: Mapped[str | None] = mapped_column(String(100))        # a version, maybe not in this store
    name: Mapped[str | None] = mapped_column(String(200))
    taxonomy: Mapped[str] = mapped_column(String(100))
    created: Mapped[str | None] = mapped_column(String(40))         # the card's creation time (ISO text)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="available")
    notes: Mapped[str | None] = mapped_column(Text)


class CurrentModel(Base):
    """One row (id 1): the version the service serves. A swap or a rollback is one UPDATE."""

    __tablename__ = "current_model"
    __table_args__ = (CheckConstraint("id = 1", name="ck_current_model_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version", ondelete="RESTRICT"))
    activated_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_by: Mapped[str | None] = mapped_column(String(200))


class ModelActivation(Base):
    """History of activations (promotions and rollbacks), for audit."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version", ondelete="RESTRICT"))
    previous: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)


JOB_KINDS = ("retrain", "evaluate", "batch_predict")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
PROMOTION_DECISIONS = ("promoted", "refused")


class Job(Base):
    """A unit of background work in the database queue (service/store/queue.py); a worker process runs it.

    A row is claimed by one conditional UPDATE (status queued -> running); the worker refreshes
    heartbeat_at while it runs, so a job whose worker died is found by its stale heartbeat.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"kind IN {JOB_KINDS}", name="ck_jobs_kind"),
        CheckConstraint(f"status IN {JOB_STATUSES}", name="ck_jobs_status"),
        Index("ix_jobs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(30))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)       # claims so far
    max_attempts: Mapped[int] = mapped_column(Integer, default=2)
    worker: Mapped[str | None] = mapped_column(String(200))          # who holds (or last held) it
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class Promotion(Base):
    """One promotion-gate decision: both models' scores on the evaluation set, the verdict and why."""

    __tablename__ = "promotions"
    __table_args__ = (CheckConstraint(f"decision IN {PROMOTION_DECISIONS}", name="ck_promotions_decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    candidate: Mapped[str] = mapped_column(ForeignKey("model_versions.version", ondelete="RESTRICT"))
    baseline: Mapped[str | None] = mapped_column(String(100))      # the version serving when judged
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    candidate_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    baseline_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    eval_images: Mapped[int] = mapped_column(Integer, default=0)
    eval_fingerprint: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


QA_STATUSES = ("pending", "passed", "failed", "flagged")


class Worklist(Base):
    """An annotation batch: photos drafted by one model version, split between named annotators."""

    __tablename__ = "worklists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model_version: Mapped[str] = mapped_column(String(100))          # the model that drafted every item
    taxonomy: Mapped[str] = mapped_column(String(100))
    annotators: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list["WorkItem"]] = relationship(back_populates="worklist", cascade="all, delete-orphan",
                                                   order_by="WorkItem.id")


class WorkItem(Base):
    """One photo of a worklist: its draft (labels and confidence), why it is hard, who has it, its QA state.

    The item's correction is not a column: it is the newest correction of the same image (approved ones
    first), so corrections arriving from Label Studio, CVAT or REST attach without any linking step.
    """

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("worklist_id", "image_id", name="uq_work_items_worklist_image_id"),
        CheckConstraint(f"qa_status IN {QA_STATUSES}", name="ck_work_items_qa_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    worklist_id: Mapped[int] = mapped_column(ForeignKey("worklists.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[str] = mapped_column(String(200))                # the photo's name in the batch
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256", ondelete="RESTRICT"), index=True)
    draft_mask_path: Mapped[str] = mapped_column(String(200))
    confidence_path: Mapped[str] = mapped_column(String(200))         # uint8 PNG, confidence * 255
    draft_classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    difficulty: Mapped[float] = mapped_column(Float, default=0.0)
    predicted_effort_s: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(Text, default="")             # why it is hard, in words
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)        # DraftInfo measures, for re-splitting
    annotator: Mapped[str | None] = mapped_column(String(200), index=True)
    position: Mapped[int | None] = mapped_column(Integer)             # 1 = first (hardest) of the share
    qa_status: Mapped[str] = mapped_column(String(20), default="pending")
    notes: Mapped[str | None] = mapped_column(Text)
    resolved_flags: Mapped[list[str]] = mapped_column(JSON, default=list)   # flag keys ticked off
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    worklist: Mapped[Worklist] = relationship(back_populates="items")
    image: Mapped[Image] = relationship(lazy="joined")
