"""Worklists: annotation batches with their drafted items, assignments and QA state.

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store.tables import QA_STATUSES, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worklists",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("taxonomy", sa.String(100), nullable=False),
        sa.Column("annotators", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "work_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("worklist_id", sa.Integer(), sa.ForeignKey("worklists.id", ondelete="CASCADE"), nullable=False),
        sa.Column("image_id", sa.String(200), nullable=False),
        sa.Column("image_sha256", sa.String(64), sa.ForeignKey("images.sha256", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("draft_mask_path", sa.String(200), nullable=False),
        sa.Column("confidence_path", sa.String(200), nullable=False),
        sa.Column("draft_classes", sa.JSON(), nullable=False),
        sa.Column("difficulty", sa.Float(), nullable=False),
        sa.Column("predicted_effort_s", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("annotator", sa.String(200), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("qa_status", sa.String(20), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("resolved_flags", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("worklist_id", "image_id", name="uq_work_items_worklist_image_id"),
        sa.CheckConstraint(f"qa_status IN {QA_STATUSES}", name="ck_work_items_qa_status"),
    )
    op.create_index("ix_work_items_worklist_id", "work_items", ["worklist_id"])
    op.create_index("ix_work_items_image_sha256", "work_items", ["image_sha256"])
    op.create_index("ix_work_items_annotator", "work_items", ["annotator"])


def downgrade() -> None:
    op.drop_table("work_items")
    op.drop_table("worklists")
