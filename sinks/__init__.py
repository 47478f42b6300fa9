"""leadbus.sinks."""
