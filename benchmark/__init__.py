"""harmonization-bench: the harness (CLI, scenario runner, metrics, reports)."""
__version__ = "0.1.0"
