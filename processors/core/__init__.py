"""The pure core of the processors: no faust, Kafka, HTTP, SQL or clock (``now`` is an argument)."""
