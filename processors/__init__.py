"""Stream processors: the pure core (`leadbus.processors.core`) and the stages that host it."""
