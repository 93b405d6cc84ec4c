"""Text and JSON forms of ID maps, one module per format, each a parse/format pair.

Every parser raises :class:`~userns.errors.ParseError` (or
:class:`~userns.errors.InvalidMapError` for a well-formed text that is not a valid map)
with the line, the column and the offending text. :mod:`.registry` puts them all behind
one signature: ``get_format("podman").parse(text)`` and ``convert(text, "podman", "oci")``.
The writers of the two formats that express only some maps (``format_crio``,
``format_nspawn``) raise :class:`~userns.errors.NotExpressibleError` for any other.

Importing this package loads none of the format modules: each name below is imported
from its module on first use (PEP 562), and :func:`get_format` loads a format's module
only when that format reads or writes a text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from ..errors import NotExpressibleError

if TYPE_CHECKING:
    from .crio import format_crio, parse_crio
    from .idmap_option import format_idmap_option, parse_idmap_option
    from .incus_idmap import format_incus_idmap, parse_incus_idmap
    from .kubelet import format_kubelet_userns, parse_kubelet_userns
    from .lxc import (
        apply_raw_idmap,
        format_lxc,
        format_raw_idmap,
        format_usernsexec,
        parse_lxc,
        parse_raw_idmap,
        parse_usernsexec,
    )
    from .newuidmap import (
        NewIDMapCommand,
        format_newuidmap,
        parse_newuidmap,
        parse_newuidmap_command,
    )
    from .notation import format_notation, parse_notation
    from .nspawn import format_nspawn, parse_nspawn
    from .oci import (
        format_oci_config,
        format_oci_mappings,
        idmap_from_oci,
        idmap_to_oci,
        parse_oci_config,
        parse_oci_mappings,
    )
    from .podman import (
        PodmanMapping,
        format_podman,
        format_podman_pair,
        parse_podman,
        parse_podman_mappings,
        parse_podman_pair,
        podman_idmap,
    )
    from .proc import format_proc, format_proc_padded, parse_proc, validate_map_write
    from .registry import (
        FORMATS,
        Format,
        FormatSideError,
        Side,
        UnknownFormatError,
        convert,
        detect_format,
        get_format,
    )
    from .unshare import format_unshare, parse_unshare
    from .xmount import format_xmount, parse_xmount

__all__ = [
    "FORMATS",
    "Format",
    "FormatSideError",
    "NewIDMapCommand",
    "NotExpressibleError",
    "PodmanMapping",
    "Side",
    "UnknownFormatError",
    "apply_raw_idmap",
    "convert",
    "detect_format",
    "format_crio",
    "format_idmap_option",
    "format_incus_idmap",
    "format_kubelet_userns",
    "format_lxc",
    "format_newuidmap",
    "format_notation",
    "format_nspawn",
    "format_oci_config",
    "format_oci_mappings",
    "format_podman",
    "format_podman_pair",
    "format_proc",
    "format_proc_padded",
    "format_raw_idmap",
    "format_unshare",
    "format_usernsexec",
    "format_xmount",
    "get_format",
    "idmap_from_oci",
    "idmap_to_oci",
    "parse_crio",
    "parse_idmap_option",
    "parse_incus_idmap",
    "parse_kubelet_userns",
    "parse_lxc",
    "parse_newuidmap",
    "parse_newuidmap_command",
    "parse_notation",
    "parse_nspawn",
    "parse_oci_config",
    "parse_oci_mappings",
    "parse_podman",
    "parse_podman_mappings",
    "parse_podman_pair",
    "parse_proc",
    "parse_raw_idmap",
    "parse_unshare",
    "parse_usernsexec",
    "parse_xmount",
    "podman_idmap",
    "validate_map_write",
]

#: The module (relative to this package) of each name, imported on first use.
_LAZY: dict[str, str] = {
    name: f".{module}"
    for module, names in (
        ("crio", ("format_crio", "parse_crio")),
        ("idmap_option", ("format_idmap_option", "parse_idmap_option")),
        ("incus_idmap", ("format_incus_idmap", "parse_incus_idmap")),
        ("kubelet", ("format_kubelet_userns", "parse_kubelet_userns")),
        ("lxc", ("apply_raw_idmap", "format_lxc", "format_raw_idmap", "format_usernsexec",
                 "parse_lxc", "parse_raw_idmap", "parse_usernsexec")),
        ("newuidmap", ("NewIDMapCommand", "format_newuidmap", "parse_newuidmap",
                       "parse_newuidmap_command")),
        ("notation", ("format_notation", "parse_notation")),
        ("nspawn", ("format_nspawn", "parse_nspawn")),
        ("oci", ("format_oci_config", "format_oci_mappings", "idmap_from_oci",
                 "idmap_to_oci", "parse_oci_config", "parse_oci_mappings")),
        ("podman", ("PodmanMapping", "format_podman", "format_podman_pair", "parse_podman",
                    "parse_podman_mappings", "parse_podman_pair", "podman_idmap")),
        ("proc", ("format_proc", "format_proc_padded", "parse_proc", "validate_map_write")),
        ("registry", ("FORMATS", "Format", "FormatSideError", "Side", "UnknownFormatError",
                      "convert", "detect_format", "get_format")),
        ("unshare", ("format_unshare", "parse_unshare")),
        ("xmount", ("format_xmount", "parse_xmount")),
    )
    for name in names
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__, globals())
