"""Job queue and promotion decisions: the jobs and promotions tables.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store.tables import JOB_KINDS, JOB_STATUSES, PROMOTION_DECISIONS, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(f"kind IN {JOB_KINDS}", name="ck_jobs_kind"),
        sa.CheckConstraint(f"status IN {JOB_STATUSES}", name="ck_jobs_status"),
    )
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
        sa.Column("candidate", sa.String(100), sa.ForeignKey("model_versions.version", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("baseline", sa.String(100), nullable=True),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("candidate_metrics", sa.JSON(), nullable=False),
        sa.Column("baseline_metrics", sa.JSON(), nullable=False),
        sa.Column("eval_images", sa.Integer(), nullable=False),
        sa.Column("eval_fingerprint", sa.String(64), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(f"decision IN {PROMOTION_DECISIONS}", name="ck_promotions_decision"),
    )
    op.create_index("ix_promotions_job_id", "promotions", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_promotions_job_id", table_name="promotions")
    op.drop_table("promotions")
    op.drop_index("ix_jobs_status_id", table_name="jobs")
    op.drop_table("jobs")
