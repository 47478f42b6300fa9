"""The event contract: Avro schemas, their catalog, single-object encoding, compatibility."""

from leadbus.avro.catalog import SchemaCatalog, SchemaEntry, packaged_catalog
from leadbus.avro.codec import DecodeError, EncodeError, decode, encode, encode_object
from leadbus.avro.compat import incompatibilities
from leadbus.avro.fingerprint import crc64_avro

__all__ = [
    "DecodeError",
    "EncodeError",
    "SchemaCatalog",
    "SchemaEntry",
    "crc64_avro",
    "decode",
    "encode",
    "encode_object",
    "incompatibilities",
    "packaged_catalog",
]
