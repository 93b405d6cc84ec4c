"""Constants of the ID space, and the one check every ID input passes.

>>> ID_MAX
4294967294
>>> check_id(65534)
65534
"""

from __future__ import annotations

from .errors import InvalidIDError

__all__ = [
    "ID_LIMIT",
    "ID_MAX",
    "INVALID_ID",
    "LEGACY_MAX_EXTENTS",
    "MAX_EXTENTS",
    "OVERFLOW_ID",
    "check_id",
]

#: The largest valid user or group ID.
ID_MAX = 4294967294
#: ``(uid_t)-1``: never a valid ID; ``chown`` reads it as "leave unchanged".
INVALID_ID = 4294967295
#: One past the largest value a ``u32`` field can hold: no extent may reach it.
ID_LIMIT = 4294967296
#: What an unmapped host ID looks like from inside (``/proc/sys/kernel/overflowuid``).
OVERFLOW_ID = 65534
#: Lines a ``uid_map`` may hold since Linux 4.15.
MAX_EXTENTS = 340
#: Lines a ``uid_map`` could hold before Linux 4.15.
LEGACY_MAX_EXTENTS = 5


def check_id(value: int, what: str = "ID") -> int:
    """Return ``value`` if it is a valid ID, else raise :class:`InvalidIDError`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}: {value!r}")
    if not 0 <= value <= ID_MAX:
        raise InvalidIDError(f"{what} must be within 0…{ID_MAX}: {value}")
    return value
