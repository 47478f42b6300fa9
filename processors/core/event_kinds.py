"""Every kind of agency event intake forwards besides leads and handover decisions, by writer schema name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from leadbus.processors.core import operations
from leadbus.processors.core.agency_events import KINDS as _EVENTS
from leadbus.processors.core.agency_events import EventKind

KINDS: Mapping[str, EventKind] = MappingProxyType({**_EVENTS, operations.KIND.schema: operations.KIND})
