"""The first registry schema: leads, cases, case members, handover steps, consumed offsets.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "leads",
        sa.Column("lead_id", sa.String(36), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("agency", sa.String(16), nullable=False),
        sa.Column("province", sa.String(2), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("violation", sa.String(16), nullable=False),
        sa.Column("subject_name", sa.Text, nullable=False),
        sa.Column("reported_at", tz, nullable=False),
        sa.Column("accepted_at", tz, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(21), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("suspect_name", sa.Text, nullable=False),
        sa.Column("suspect_province", sa.String(2)),
        sa.Column("handling", sa.String(16), nullable=False),
        sa.Column("members", sa.Integer, nullable=False),
        sa.Column("merged_into", sa.String(21)),
        sa.Column("facts", sa.Text, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
    )
    op.create_table(
        "case_members",
        sa.Column("case_id", sa.String(21), primary_key=True),
        sa.Column("lead_id", sa.String(36), primary_key=True),
    )
    op.create_table(
        "handover_steps",
        sa.Column("case_id", sa.String(21), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("event", sa.String(24), nullable=False),
        sa.Column("to_phase", sa.String(24), nullable=False),
        sa.Column("at", tz, nullable=False),
        sa.Column("due_at", tz),
        sa.Column("rule", sa.String(48)),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("escalated_to", sa.String(16)),
    )
    op.create_table(
        "consumed_offsets",
        sa.Column("topic", sa.String(128), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("consumed_offsets", "handover_steps", "case_members", "cases", "leads"):
        op.drop_table(table)
