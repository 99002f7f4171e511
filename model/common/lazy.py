"""Package attributes that import their module on first use (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__`` for `package`: ``exports[name]`` is the module that
    `name` is imported from when it is first read; the value is then stored in the package, so
    later reads cost nothing. Use as ``__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)``.
    """
    module = sys.modules[package]

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(module), *exports})

    return __getattr__, __dir__
