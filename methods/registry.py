"""The method registry (DESIGN.md section 2).

A method is registered once, by name, with what it can do::

    from methods.registry import register

    @register(name="my_method", capabilities=("embed",), requires=("numpy",),
              citation="Me et al. 2026", url="https://example.org")
    def my_method(adata, task):
        return {"embedding": ...}

Built-in adapters live in ``methods/adapters/`` (one file per method) and are found by
import. External packages register the same way through the entry point group
``harmonization_bench.methods`` (see README, "Add your method").
"""
from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

from .base import CAPABILITIES

ENTRY_POINT_GROUP = "harmonization_bench.methods"
LANGUAGES = ("python", "r")
#: import name -> PyPI name, where they differ (for "pip install ..." hints)
PIP_NAMES = {"scvi": "scvi-tools", "sklearn": "scikit-learn", "skmisc": "scikit-misc"}


class RegistryError(ValueError):
    """Bad registration or lookup (duplicate name, unknown capability, unknown method)."""


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fn: Callable
    capabilities: tuple
    language: str = "python"
    requires: tuple = ()  # importable Python modules
    requires_r: tuple = ()  # R packages (implies rpy2)
    uses_labels: bool = False
    defaults: dict = field(default_factory=dict)
    citation: str = ""
    url: str = ""
    version: Optional[str] = None  # tool version; None = ask the first required module
    description: str = ""
    is_control: bool = False
    source: str = "builtin"  # builtin | entry point name

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def availability(self) -> tuple[bool, str]:
        """(runnable here?, reason if not: what to install)."""
        missing = [m for m in self.requires if importlib.util.find_spec(m.split(".")[0]) is None]
        if missing:
            pip = " ".join(PIP_NAMES.get(m.split(".")[0], m) for m in missing)
            return False, f"Python package(s) {', '.join(missing)} not installed (pip install {pip})"
        if self.requires_r or self.language == "r":
            if importlib.util.find_spec("rpy2") is None:
                return False, "rpy2 not installed (pip install rpy2==3.5.17; needs R)"
            installed = installed_r_packages()
            if installed is None:
                return False, "R not found (apt-get install r-base-core, or run `make setup`)"
            missing_r = [p for p in self.requires_r if p not in installed]
            if missing_r:
                return False, f"R package(s) {', '.join(missing_r)} not installed"
        return True, ""

    def tool_version(self) -> str:
        if self.version:
            return self.version
        for mod in self.requires:
            try:
                return f"{mod} {importlib.metadata.version(PIP_NAMES.get(mod, mod))}"
            except importlib.metadata.PackageNotFoundError:
                continue
        return ""


_REGISTRY: dict[str, MethodSpec] = {}
_LOADED = False


def register(
    name: str,
    *,
    capabilities,
    language: str = "python",
    requires=(),
    requires_r=(),
    uses_labels: bool = False,
    defaults: Optional[dict] = None,
    citation: str = "",
    url: str = "",
    version: Optional[str] = None,
    description: str = "",
    is_control: bool = False,
    replace: bool = False,
):
    """Decorator registering ``fn(adata, task) -> dict`` as method ``name``."""
    caps = tuple(capabilities)
    bad = [c for c in caps if c not in CAPABILITIES]
    if not caps or bad:
        raise RegistryError(
            f"method {name!r}: unknown capability {bad or '(none given)'}; choose from {list(CAPABILITIES)}"
        )
    if language not in LANGUAGES:
        raise RegistryError(f"method {name!r}: language must be one of {LANGUAGES}, got {language!r}")
    if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise RegistryError(f"method name {name!r} must be non-empty letters, digits, '_', '-' or '.'")

    def deco(fn):
        if name in _REGISTRY and not replace and _REGISTRY[name].fn is not fn:
            raise RegistryError(
                f"method {name!r} is already registered (by {_REGISTRY[name].fn.__module__}); pick another name"
            )
        spec = MethodSpec(
            name=name,
            fn=fn,
            capabilities=caps,
            language=language,
            requires=tuple(requires),
            requires_r=tuple(requires_r),
            uses_labels=uses_labels,
            defaults=dict(defaults or {}),
            citation=citation,
            url=url,
            version=version,
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            is_control=is_control,
            source=_CURRENT_SOURCE[-1] if _CURRENT_SOURCE else "builtin",
        )
        _REGISTRY[name] = spec
        fn.method_spec = spec
        return fn

    return deco


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


_CURRENT_SOURCE: list[str] = []


#: import errors of adapters or plug-ins, by module/entry point (shown by `benchmark methods`)
LOAD_ERRORS: dict[str, str] = {}


def load_all(entry_points: bool = True) -> None:
    """Import every built-in adapter and every installed plug-in (idempotent).

    A plug-in's entry point (group ``harmonization_bench.methods``) names either a module that
    registers its methods on import, or a function taking no argument that registers them.
    A broken adapter or plug-in is recorded in :data:`LOAD_ERRORS` and warned about; it never
    breaks the harness.
    """
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from . import adapters

    for mod in pkgutil.iter_modules(adapters.__path__):
        if mod.name.startswith("_"):
            continue
        modname = f"{adapters.__name__}.{mod.name}"
        try:
            importlib.import_module(modname)
        except Exception as exc:
            LOAD_ERRORS[modname] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"built-in adapter {modname} failed to import: {exc}")
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            load_entry_point(ep)


def load_entry_point(ep) -> None:
    """Load one plug-in entry point (see :func:`load_all`)."""
    _CURRENT_SOURCE.append(f"plug-in {ep.name} ({ep.value})")
    try:
        obj = ep.load()
        if callable(obj) and not hasattr(obj, "method_spec") and not isinstance(obj, type):
            obj()
    except Exception as exc:
        LOAD_ERRORS[f"plug-in {ep.name}"] = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"plug-in {ep.name!r} ({ep.value}) failed to load: {exc}")
    finally:
        _CURRENT_SOURCE.pop()


def get(name: str) -> MethodSpec:
    load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RegistryError(unknown_name_message("method", name, list(_REGISTRY))) from None


def all_methods() -> dict[str, MethodSpec]:
    load_all()
    return dict(sorted(_REGISTRY.items()))


def unknown_name_message(kind: str, name: str, valid) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid: {', '.join(sorted(valid))}"


@functools.lru_cache(maxsize=1)
def installed_r_packages() -> Optional[frozenset]:
    """Names of installed R packages, or None when R is absent (asked once per process)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    try:
        out = subprocess.run(
            [rscript, "--vanilla", "-e", "cat(rownames(installed.packages()), sep='\\n')"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    return frozenset(line.strip() for line in out.splitlines() if line.strip())
