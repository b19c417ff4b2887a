"""The parts of `make run` (scripts/run-local.py): prerequisites, key, processes, broker."""
