"""What the gateway has published: (lead id, revision) → content digest and where the broker put it.

Written only after the broker confirmed the event, so an entry is a promise kept: a repost of the same
lead and revision answers from here (published once, the same answer), other content under the same
revision is a conflict. SQLite in the gateway's state folder (WAL, synchronous=FULL); one gateway
process per folder.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS published (
    lead_id      TEXT NOT NULL,
    revision     INTEGER NOT NULL,
    digest       TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    "offset"     INTEGER NOT NULL,
    system       TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (lead_id, revision)
)
"""


@dataclass(frozen=True)
class Published:
    lead_id: str
    revision: int
    digest: str
    topic: str
    partition: int
    offset: int
    system: str
    published_at: str


class Ledger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()

    def revisions(self, lead_id: str) -> list[Published]:
        with self._lock:
            rows = self._db.execute(
                'SELECT lead_id, revision, digest, topic, partition, "offset", system, published_at FROM published '
                "WHERE lead_id = ? ORDER BY revision", (lead_id,)).fetchall()
        return [Published(*row) for row in rows]

    def get(self, lead_id: str, revision: int) -> Published | None:
        return next((p for p in self.revisions(lead_id) if p.revision == revision), None)

    def record(self, lead_id: str, revision: int, digest: str, topic: str, partition: int, offset: int,
               system: str) -> Published:
        entry = Published(lead_id, revision, digest, topic, partition, offset, system,
                          datetime.now(UTC).isoformat(timespec="milliseconds"))
        with self._lock:
            self._db.execute('INSERT OR IGNORE INTO published VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                             (entry.lead_id, entry.revision, entry.digest, entry.topic, entry.partition,
                              entry.offset, entry.system, entry.published_at))
        return self.get(lead_id, revision) or entry

    def close(self) -> None:
        with self._lock:
            self._db.close()
