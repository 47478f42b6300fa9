"""leadbus.schemas."""
