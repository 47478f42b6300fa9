"""The routing stage: `leadbus.cases` → jurisdiction feeds, regional bulletins (masked), channels.

Stateless: every CaseUpdated is routed on its own by the pure core (`core/routing.py`). The
jurisdiction and channel topics carry the CaseUpdated as published; regional topics carry a
`RegionalBulletin`, the only form a regional dashboard ever receives.
"""

from __future__ import annotations

import logging
from datetime import datetime

from leadbus.avro import DecodeError, SchemaCatalog, decode, encode, packaged_catalog
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.core.routing import bulletin, routes

log = logging.getLogger("leadbus.processors.routing")


class RoutingHandler:
    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.bulletin_schema = self.catalog.latest("cn.leadbus.RegionalBulletin")

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        value = record.value or b""
        try:
            _, case = decode(self.catalog, value, self.case_schema)
        except DecodeError as exc:  # linking wrote it: a bug or tampering, and the case is not routed
            log.error("undecodable case at %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            return Result()
        result = Result()
        key = str(case["case_id"]).encode()
        for route in routes(case):
            if route.channel == "region":
                event = {**bulletin(case, route.recipient), "published_at": now}
                result.outputs.append(Output(route.topic, key, encode(self.bulletin_schema, event)))
            else:
                result.outputs.append(Output(route.topic, key, value))
        return result
