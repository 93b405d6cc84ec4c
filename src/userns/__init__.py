"""userns: Linux user-namespace UID/GID mapping.

>>> from userns import IDMap
>>> m = IDMap.single(0, 231072, 65536)     # /etc/subuid: dockremap:231072:65536
>>> m.to_host(0), m.to_host(33), m.container_view(0)
(231072, 231105, 65534)
"""

from __future__ import annotations

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
from .formats.proc import format_proc, parse_proc, validate_map_write
from .formats.registry import FORMATS, convert, get_format
from .ids import ID_MAX, INVALID_ID, LEGACY_MAX_EXTENTS, MAX_EXTENTS, OVERFLOW_ID
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
