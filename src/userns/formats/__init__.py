"""Text and JSON forms of ID maps, one module per format, each a parse/format pair.

Every parser raises :class:`~userns.errors.ParseError` (or
:class:`~userns.errors.InvalidMapError` for a well-formed text that is not a valid map)
with the line, the column and the offending text.
"""

from __future__ import annotations

from .proc import format_proc, format_proc_padded, parse_proc, validate_map_write

__all__ = ["format_proc", "format_proc_padded", "parse_proc", "validate_map_write"]
