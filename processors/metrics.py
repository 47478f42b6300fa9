"""Prometheus metrics of the processors (one registry per process; `leadbus process --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter

INTAKE_ACCEPTED = Counter("leadbus_intake_accepted", "Leads accepted by intake", ["publisher"])
INTAKE_REJECTED = Counter("leadbus_intake_rejected", "Records rejected by intake", ["reason", "publisher"])
INTAKE_DUPLICATES = Counter("leadbus_intake_duplicates", "Exact redeliveries dropped by intake", ["publisher"])
INTAKE_WARNINGS = Counter("leadbus_intake_warnings", "Warnings attached to accepted leads", ["code"])
STAGE_DEAD_LETTERS = Counter("leadbus_stage_dead_letters", "Records a stage turned into dead letters because it could "
                             "not handle or produce them", ["stage", "reason"])
STAGE_SKIPPED = Counter("leadbus_stage_skipped", "Records skipped because not even their dead letter could be written",
                        ["stage"])
STATE_RESETS = Counter("leadbus_state_resets", "Local state partitions discarded and rebuilt because they did not "
                       "match their changelog", ["changelog", "reason"])
