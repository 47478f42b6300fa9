"""The registry's schema comes from its Alembic migrations, and they match the code's tables."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from leadbus.sinks.registry import metadata, registry_engine


def test_migrations_build_exactly_the_tables_the_code_uses(tmp_path: Path) -> None:
    engine = registry_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert MigrationContext.configure(conn).get_current_revision() == "0005"
    assert set(inspect(engine).get_table_names()) >= {"leads", "cases", "case_members", "handover_steps",
                                                       "consumed_offsets", "alembic_version", "case_withdrawals",
                                                       "courier_replies", "case_link_history"}
    registry_engine(f"sqlite:///{tmp_path / 'r.db'}").dispose()  # migrating again changes nothing
    engine.dispose()
