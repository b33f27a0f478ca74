"""Methods: the registry and one adapter per method (DESIGN.md section 2)."""
from .base import CAPABILITIES, MethodInputError, MethodResult, MethodUnavailable, TaskSpec
from .registry import MethodSpec, RegistryError, all_methods, get, register

__all__ = [
    "CAPABILITIES", "MethodInputError", "MethodResult", "MethodUnavailable", "TaskSpec",
    "MethodSpec", "RegistryError", "all_methods", "get", "register",
]
