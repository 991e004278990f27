"""App variants for ``bench.run --app-factory``: try a change without editing ``app/``."""
