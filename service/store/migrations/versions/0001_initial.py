"""Initial schema: images, corrections, model_versions, current_model, model_activations.

Revision ID: 0001
Revises: (none)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store.tables import MODEL_STATUSES, SOURCES, STATUSES, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("image_sha256", sa.String(64), sa.ForeignKey("images.sha256", ondelete="RESTRICT"), nullable=False),
        sa.Column("mask_sha256", sa.String(64), nullable=False),
        sa.Column("mask_path", sa.String(200), nullable=False),
        sa.Column("taxonomy", sa.String(100), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("annotator", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("review_notes", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("draft_model_version", sa.String(100), nullable=True),
        sa.Column("draft_mask_sha256", sa.String(64), nullable=True),
        sa.Column("draft_mask_path", sa.String(200), nullable=True),
        sa.Column("draft_changed_fraction", sa.Float(), nullable=True),
        sa.UniqueConstraint("source", "external_id", name="uq_corrections_source_external_id"),
        sa.CheckConstraint(f"source IN {SOURCES}", name="ck_corrections_source"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_corrections_status"),
    )
    op.create_index("ix_corrections_image_sha256", "corrections", ["image_sha256"])
    op.create_index("ix_corrections_source", "corrections", ["source"])
    op.create_index("ix_corrections_annotator", "corrections", ["annotator"])
    op.create_index("ix_corrections_draft_model_version", "corrections", ["draft_model_version"])
    op.create_index("ix_corrections_status_created", "corrections", ["status", "created_at"])
    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(100), primary_key=True),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("parent", sa.String(100), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("taxonomy", sa.String(100), nullable=False),
        sa.Column("created", sa.String(40), nullable=True),
        sa.Column("registered_at", UTCDateTime(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.CheckConstraint(f"status IN {MODEL_STATUSES}", name="ck_model_versions_status"),
    )
    op.create_table(
        "current_model",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.String(100), sa.ForeignKey("model_versions.version", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("activated_at", UTCDateTime(), nullable=False),
        sa.Column("activated_by", sa.String(200), nullable=True),
        sa.CheckConstraint("id = 1", name="ck_current_model_single_row"),
    )
    op.create_table(
        "model_activations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(100), sa.ForeignKey("model_versions.version", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("previous", sa.String(100), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("model_activations")
    op.drop_table("current_model")
    op.drop_table("model_versions")
    for name in ("ix_corrections_status_created", "ix_corrections_draft_model_version", "ix_corrections_annotator",
                 "ix_corrections_source", "ix_corrections_image_sha256"):
        op.drop_index(name, table_name="corrections")
    op.drop_table("corrections")
    op.drop_table("images")
