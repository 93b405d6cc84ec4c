"""userns: Linux user-namespace UID/GID mapping.

>>> from userns import IDMap
>>> m = IDMap.single(0, 231072, 65536)     # /etc/subuid: dockremap:231072:65536
>>> m.to_host(0), m.to_host(33), m.container_view(0)
(231072, 231105, 65534)

``import userns`` loads only the errors and the ID constants; each other name is
imported from its module the first time it is used (PEP 562), so a command that needs
one format does not pay for the others, nor for ``attrs`` when it needs no map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from .errors import (
    InvalidIDError,
    InvalidMapError,
    InvalidOwnerError,
    InvalidRangeError,
    Location,
    ParseError,
    UnmappedIDError,
    UsernsError,
)
from .ids import ID_MAX, INVALID_ID, LEGACY_MAX_EXTENTS, MAX_EXTENTS, OVERFLOW_ID

if TYPE_CHECKING:
    from .formats.proc import format_proc, parse_proc, validate_map_write
    from .formats.registry import FORMATS, convert, get_format
    from .maps import Extent, IDMap, IDMapPair
    from .ranges import IDRange, IDSet

__version__ = "0.1.0.dev0"

__all__ = [
    "FORMATS",
    "ID_MAX",
    "INVALID_ID",
    "LEGACY_MAX_EXTENTS",
    "MAX_EXTENTS",
    "OVERFLOW_ID",
    "Extent",
    "IDMap",
    "IDMapPair",
    "IDRange",
    "IDSet",
    "InvalidIDError",
    "InvalidMapError",
    "InvalidOwnerError",
    "InvalidRangeError",
    "Location",
    "ParseError",
    "UnmappedIDError",
    "UsernsError",
    "__version__",
    "convert",
    "format_proc",
    "get_format",
    "parse_proc",
    "validate_map_write",
]

#: The names imported on first use, and the module (relative to this package) of each.
_LAZY: dict[str, str] = {
    "Extent": ".maps", "IDMap": ".maps", "IDMapPair": ".maps",
    "IDRange": ".ranges", "IDSet": ".ranges",
    "format_proc": ".formats.proc", "parse_proc": ".formats.proc",
    "validate_map_write": ".formats.proc",
    "FORMATS": ".formats.registry", "convert": ".formats.registry",
    "get_format": ".formats.registry",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__, globals())
