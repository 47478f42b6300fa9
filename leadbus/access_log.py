"""Access logs (who, when, what) as JSON lines in a file readable by its owner only, and on `logging`.

Used by the agency gateway (every call) and by the signed-in dashboards (every view and search, for
PIPL accountability). One line per event, appended and flushed at once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class AccessLog:
    def __init__(self, path: Path | None, logger: str) -> None:
        self.path = path
        self.log = logging.getLogger(logger)
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file: Any = os.fdopen(fd, "a", encoding="utf-8")
        else:
            self._file = None

    def write(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        line = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), **entry}
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)
        with self._lock:
            if self._file is not None:
                self._file.write(text + "\n")
                self._file.flush()
        self.log.info("access %s", text)
        return line

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_access_log(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    # "\n" only (str.splitlines would also cut at U+2028 and friends inside a logged value); a last line still
    # being written is left out.
    lines = [line for line in text[: text.rfind("\n") + 1].split("\n") if line]
    if limit is not None:
        lines = lines[-limit:]
    return [json.loads(line) for line in lines if line.strip()]
