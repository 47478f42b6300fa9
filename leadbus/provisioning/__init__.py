"""Provisioning a real cluster (any cluster, not only a local one): topic declarations and the ACL policy."""
