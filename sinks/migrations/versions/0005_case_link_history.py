"""Analysts' link decisions on a case (issue #19): each merge (CONFIRM) and split that made the case what it is —
who decided (the authenticated analyst, agency, province, role), when, why, on which suggestion.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "case_link_history",
        sa.Column("case_id", sa.String(21), primary_key=True),
        sa.Column("decision_id", sa.String(36), primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("analyst", sa.String(128), nullable=False),
        sa.Column("agency", sa.String(16), nullable=False),
        sa.Column("province", sa.String(2), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suggestion_id", sa.String(32)),
        sa.Column("merged", sa.String(21)),
        sa.Column("leads", sa.Text),
        sa.Column("split_from", sa.String(21)),
        sa.Column("split_to", sa.String(21)),
    )
    op.create_index("ix_case_link_history_decided_at", "case_link_history", ["decided_at"])


def downgrade() -> None:
    op.drop_index("ix_case_link_history_decided_at", "case_link_history")
    op.drop_table("case_link_history")
