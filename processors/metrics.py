"""Prometheus metrics of the processors (one registry per process; `leadbus process --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter

INTAKE_ACCEPTED = Counter("leadbus_intake_accepted", "Leads accepted by intake", ["publisher"])
INTAKE_REJECTED = Counter("leadbus_intake_rejected", "Records rejected by intake", ["reason", "publisher"])
INTAKE_DUPLICATES = Counter("leadbus_intake_duplicates", "Exact redeliveries dropped by intake", ["publisher"])
INTAKE_WARNINGS = Counter("leadbus_intake_warnings", "Warnings attached to accepted leads", ["code"])
