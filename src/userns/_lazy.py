"""A package's names imported on first use (PEP 562), for ``userns``, ``userns.formats``
and ``userns.subid``: a command that needs one of them does not pay for the others.

>>> import types
>>> ns = {"__name__": "demo"}
>>> get, names = lazy_names("json", {"dumps": "json"}, ["dumps"], ns)
>>> get("dumps")([1]), "dumps" in ns, names()
('[1]', True, ['__name__', 'dumps'])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, table: dict[str, str], public: list[str],
               namespace: dict[str, Any]) -> tuple[Callable[[str], object],
                                                   Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: each name of ``table``
    is imported from the module it gives (relative to ``package``) the first time it is
    asked for, then kept in ``namespace`` (the package's globals), so later uses are plain
    attribute reads; ``__dir__`` lists ``namespace`` and ``public`` (its ``__all__``)."""

    def __getattr__(name: str) -> object:
        try:
            module = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(public))

    return __getattr__, __dir__
