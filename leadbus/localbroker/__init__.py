"""The local broker launcher (developers, tests, the demo): real Apache Kafka from Maven Central jars, no Docker."""

from leadbus.localbroker.cluster import ClusterSecurity, KafkaCluster, KafkaNode
from leadbus.localbroker.runtime import KafkaRuntimeError, ensure_kafka_libs

__all__ = ["ClusterSecurity", "KafkaCluster", "KafkaNode", "KafkaRuntimeError", "ensure_kafka_libs"]
