"""leadbus: the cross-agency event bus for case leads."""
