"""leadbus.processors."""
