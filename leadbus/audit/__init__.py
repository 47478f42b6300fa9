"""Auditors' tools: verified replay of topics or the archive, export, and re-derivation (DESIGN §7).

    verification.py  pure: the record an auditor replays, findings, the `Verifier` protocol and today's verifiers
    sources.py       where records come from: a Kafka topic by time (assign(), no group commits) or the archive
    export.py        JSON Lines (the contract's field names) and an Avro object container file
    replay.py        `leadbus replay`: source → verifiers → export → summary
    rebuild.py       `leadbus audit rebuild`: re-derive cases, handover steps and routes with the same core
"""
