"""CaseLead v2 in the registry (issue #15): the conduct period, prior penalties, ICP filing numbers, labels sold /
held and made by self / others, marks used on goods or services — on leads and on cases. All nullable: v1 leads
and cases carry none of them.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

COLUMNS = (
    ("conduct_from", sa.Date),
    ("conduct_to", sa.Date),
    ("prior_penalties", sa.Text),  # JSON list of {kind, decided_on, decided_by, violation}
    ("icp_filings", sa.Text),  # JSON list of ICP filing numbers (网站备案号)
    ("labels_sold", sa.BigInteger),
    ("labels_held", sa.BigInteger),
    ("labels_made_by", sa.String(8)),  # SELF / OTHERS
    ("mark_use", sa.String(8)),  # GOODS / SERVICES
)


def upgrade() -> None:
    for table in ("leads", "cases"):
        with op.batch_alter_table(table) as batch:
            for name, kind in COLUMNS:
                batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for table in ("leads", "cases"):
        with op.batch_alter_table(table) as batch:
            for name, _ in reversed(COLUMNS):
                batch.drop_column(name)
