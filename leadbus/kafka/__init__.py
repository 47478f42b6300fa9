"""Running real Apache Kafka brokers from Maven Central jars (no Docker)."""

from leadbus.kafka.cluster import ClusterSecurity, KafkaCluster, KafkaNode
from leadbus.kafka.runtime import KafkaRuntimeError, ensure_kafka_libs

__all__ = ["ClusterSecurity", "KafkaCluster", "KafkaNode", "KafkaRuntimeError", "ensure_kafka_libs"]
