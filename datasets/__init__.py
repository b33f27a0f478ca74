"""harmonization-bench datasets: data contract, simulator, preprocessing and dataset registry.

Knows nothing of methods or the benchmark (DESIGN.md, dependency direction).
"""
from .contract import DataContractError, attach_protein, validate
from .simulate import simulate

__all__ = ["DataContractError", "attach_protein", "validate", "simulate"]
