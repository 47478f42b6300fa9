"""Courier replies (寄递渠道, issue #18): a courier's answer about a parcel, relayed by SPB, shown on the case.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "courier_replies",
        sa.Column("reply_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(21), nullable=False, index=True),
        sa.Column("waybill", sa.String(64), nullable=False),
        sa.Column("courier", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("agency", sa.String(16), nullable=False),
        sa.Column("province", sa.String(2), nullable=False),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("courier_replies")
