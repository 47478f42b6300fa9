"""Running real Apache Kafka brokers from Maven Central jars (no Docker)."""

from leadbus.kafka.cluster import KafkaCluster, KafkaNode
from leadbus.kafka.runtime import KafkaRuntimeError, ensure_kafka_libs

__all__ = ["KafkaCluster", "KafkaNode", "KafkaRuntimeError", "ensure_kafka_libs"]
