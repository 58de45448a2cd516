"""Benchmarks: task specs and loaders for MMEB, ViDoRe and the offline libdocs suite, plus the
public training sets. Each module in MODULES declares its knowledge as data (TASKS, GROUPS,
TABLES, TRAIN_SOURCES; see harness/benchmark.py); a new benchmark is one more module here."""

MODULES = ("libdocs", "vidore", "mmeb", "train_sets")
