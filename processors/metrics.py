"""Prometheus metrics of the processors (one registry per process; `leadbus process --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INTAKE_ACCEPTED = Counter("leadbus_intake_accepted", "Leads accepted by intake", ["publisher"])
INTAKE_REJECTED = Counter("leadbus_intake_rejected", "Records rejected by intake", ["reason", "publisher"])
INTAKE_DUPLICATES = Counter("leadbus_intake_duplicates", "Exact redeliveries dropped by intake", ["publisher"])
INTAKE_WARNINGS = Counter("leadbus_intake_warnings", "Warnings attached to accepted leads", ["code"])
STAGE_DEAD_LETTERS = Counter("leadbus_stage_dead_letters", "Records a stage turned into dead letters because it could "
                             "not handle or produce them", ["stage", "reason"])
STAGE_SKIPPED = Counter("leadbus_stage_skipped", "Records skipped because not even their dead letter could be written",
                        ["stage"])
STAGE_PRODUCER_RESTARTS = Counter("leadbus_stage_producer_restarts", "Transactional producers a stage replaced after "
                                  "they failed fatally (a broker refusing an abort: not a fence)", ["stage"])
STATE_RESETS = Counter("leadbus_state_resets", "Local state partitions discarded and rebuilt because they did not "
                       "match their changelog", ["changelog", "reason"])

# -- every stage: progress, latency, lag (processors/report.py), state ---------------------------------------------

# Seconds from a record's timestamp (the publisher's CreateTime, or the broker's LogAppendTime) to the commit of the
# transaction holding its outputs: end-to-end latency up to and including this stage.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGE_RECORDS = Counter("leadbus_stage_records", "Records a stage consumed and committed (outputs, state, offsets in "
                        "one transaction)", ["stage"])
STAGE_DEAD_LETTER_OUTPUTS = Counter("leadbus_stage_dead_letter_outputs", "Records a stage committed to its dead-letter "
                                    "topic, whoever decided it (the step's rejections and the stage's own)", ["stage"])
STAGE_LATENCY = Histogram("leadbus_stage_latency_seconds", "Record timestamp to the commit of its outputs",
                          ["stage"], buckets=_LATENCY_BUCKETS)
STAGE_TRANSACTION = Histogram("leadbus_stage_transaction_seconds", "Duration of one committed batch transaction "
                              "(step, produce, send offsets, commit)", ["stage"], buckets=_DURATION_BUCKETS)
# Where a committed transaction's wall time goes, summed per phase: `consume` (taking its batch off the consumer),
# `step` (the records handled, their outputs kept in memory), `produce` (the transaction begun, the outputs, sealed, and
# the state changelog handed to the producer), `offsets` (send_offsets_to_transaction), `commit`
# (commit_transaction: the producer's queue flushed, the coordinator's EndTxn), `wait` (what the stage's thread waited
# for those two: they run on its finisher thread while the next batch is stepped), `local` (the state written to
# RocksDB). The stage's wall: consume + step + produce + wait + local.
STAGE_PHASE_SECONDS = Counter("leadbus_stage_phase_seconds", "Wall time of committed transactions, per phase (consume, "
                              "step, produce, offsets, commit, wait, local)", ["stage", "phase"])
STAGE_BATCH_RECORDS = Histogram("leadbus_stage_batch_records", "Records per committed batch", ["stage"],
                                buckets=(1, 5, 10, 50, 100, 250, 500, 1000))
STAGE_TICK = Histogram("leadbus_stage_tick_seconds", "Duration of one time-driven scan (deadlines) and its "
                       "transaction", ["stage"], buckets=_DURATION_BUCKETS)
STAGE_BATCH_FAILURES = Counter("leadbus_stage_batch_failures", "Batches (or halves of one) whose transaction was "
                               "aborted and retried in halves, down to single records", ["stage"])
STAGE_LAST_COMMIT = Gauge("leadbus_stage_last_commit_timestamp_seconds", "Unix time of the stage's last committed "
                          "transaction", ["stage"])
STAGE_ASSIGNED = Gauge("leadbus_stage_assigned_partitions", "Input partitions assigned to this worker (0: a stand-by)",
                       ["stage"])
STAGE_UP = Gauge("leadbus_stage_up", "1 while the stage's loop runs", ["stage"])
CONSUMER_LAG = Gauge("leadbus_consumer_lag", "Records between the stage group's committed offset and the end of the "
                     "partition (read_committed), per partition this worker owns", ["stage", "topic", "partition"])
CONSUMER_LAG_PROBE_ERRORS = Counter("leadbus_consumer_lag_probe_errors", "Lag probes that failed (the gauge keeps its "
                                    "last value)", ["stage"])

# -- the handover stage ---------------------------------------------------------------------------------------------

HANDOVER_OVERDUE = Gauge("leadbus_handover_overdue_duties", "Handover duties past their statutory due time and not "
                         "yet done, in the state partitions this worker owns", ["action"])
HANDOVER_OPEN = Gauge("leadbus_handover_open", "Handovers under way (not closed), in the partitions this worker owns")
