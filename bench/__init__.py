"""The benchmark of `make bench` (see bench/run.py)."""
