"""The paper's scenarios, one module each, run by one engine (issue 7).

``SCENARIOS`` maps name -> :class:`benchmark.scenarios.base.Scenario`, in the paper's order;
:func:`get_scenario` looks one up and names the closest valid one on a typo.
"""
from __future__ import annotations

import importlib

from .base import MethodRun, Scenario

_MODULES = ("pair", "heldout", "annotation", "trajectory", "protein", "seed_labeling", "hierarchy",
            "de_bulk", "scaling")

SCENARIOS: dict = {}
for _name in _MODULES:
    try:
        _mod = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:  # a scenario module not written yet
        if _exc.name != f"{__name__}.{_name}":
            raise
        continue
    SCENARIOS[_mod.SCENARIO.name] = _mod.SCENARIO


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        from methods.registry import unknown_name_message

        raise KeyError(unknown_name_message("scenario", name, SCENARIOS)) from None


__all__ = ["SCENARIOS", "MethodRun", "Scenario", "get_scenario"]
