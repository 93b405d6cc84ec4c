"""Codecs for the two extended attributes that carry IDs: file capabilities and POSIX ACLs.

Pure: bytes in, values out, no I/O. The shifter reads the raw values, translates the IDs
in them with these codecs and writes them back.

``security.capability`` (``struct vfs_cap_data`` / ``vfs_ns_cap_data``, little-endian):
a ``magic_etc`` word (revision in the top byte, ``VFS_CAP_FLAGS_EFFECTIVE`` in bit 0),
then permitted/inheritable 32-bit pairs (one pair in revision 1, two in 2 and 3), and in
revision 3 the *root uid*: the host uid of the namespace root the capability is valid for.
Shifting translates that root uid; revisions 1 and 2 carry no ID and are kept as they are.

>>> cap = parse_capability(bytes.fromhex("0100000300202000002020000000000000000000a0860100"))
>>> cap.revision, cap.effective, cap.rootid
(3, True, 100000)
>>> shift_capability(format_capability(cap), lambda uid: uid + 1000).hex()[-8:]
'888a0100'

``system.posix_acl_access`` / ``system.posix_acl_default`` (``posix_acl_xattr``): a
version word (2), then 8-byte entries ``tag:u16 perm:u16 id:u32``. Named ``ACL_USER``
entries carry a uid and named ``ACL_GROUP`` entries a gid; the other tags carry
``ACL_UNDEFINED_ID``.

>>> acl = parse_acl(bytes.fromhex(
...     "02000000" "01000600ffffffff" "02000600e8030000" "04000400ffffffff"
...     "08000400d0070000" "10000600ffffffff" "20000400ffffffff"))
>>> [(e.tag_name, e.id) for e in acl.entries if e.id is not None]
[('user', 1000), ('group', 2000)]
>>> shifted = parse_acl(shift_acl(format_acl(acl), lambda u: u + 5, lambda g: g + 7))
>>> [e.id for e in shifted.entries if e.id is not None]
[1005, 2007]
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import attrs

from ..errors import (
    XattrFormatError,
)

__all__ = [
    "ACL_ACCESS",
    "ACL_DEFAULT",
    "CAPABILITY",
    "ACLEntry",
    "FileCapability",
    "PosixACL",
    "XattrFormatError",
    "format_acl",
    "format_capability",
    "parse_acl",
    "parse_capability",
    "shift_acl",
    "shift_capability",
]

#: The attribute names the shifter translates.
CAPABILITY = "security.capability"
ACL_ACCESS = "system.posix_acl_access"
ACL_DEFAULT = "system.posix_acl_default"

_REVISION_MASK = 0xFF000000
_FLAGS_EFFECTIVE = 0x000001
_SIZES = {1: 12, 2: 20, 3: 24}

_ACL_VERSION = 2
_ACL_UNDEFINED_ID = 0xFFFFFFFF
_TAG_NAMES = {0x01: "user_obj", 0x02: "user", 0x04: "group_obj", 0x08: "group",
              0x10: "mask", 0x20: "other"}
_ACL_USER = 0x02
_ACL_GROUP = 0x08


@attrs.frozen
class FileCapability:
    """A decoded ``security.capability`` value.

    ``permitted`` and ``inheritable`` are the capability bit masks (64 bits in revisions
    2 and 3, 32 in revision 1); ``rootid`` is set in revision 3 only.

    >>> FileCapability(2, True, 1 << 13, 0).rootid is None
    True
    """

    revision: int
    effective: bool
    permitted: int
    inheritable: int
    rootid: int | None = None


def parse_capability(raw: bytes) -> FileCapability:
    """Decode a ``security.capability`` value (revision 1, 2 or 3).

    >>> parse_capability(bytes.fromhex("0100000200200000000000000000000000000000"))
    FileCapability(revision=2, effective=True, permitted=8192, inheritable=0, rootid=None)
    """
    if len(raw) < 4:
        raise XattrFormatError(f"capability value too short: {len(raw)} bytes",
                               reason="bad-capability")
    (magic,) = struct.unpack_from("<I", raw)
    revision = (magic & _REVISION_MASK) >> 24
    size = _SIZES.get(revision)
    if size is None:
        raise XattrFormatError(f"unknown capability revision {revision:#x}",
                               reason="bad-capability")
    if len(raw) != size:
        raise XattrFormatError(
            f"capability revision {revision} must be {size} bytes: {len(raw)}",
            reason="bad-capability")
    effective = bool(magic & _FLAGS_EFFECTIVE)
    if revision == 1:
        permitted, inheritable = struct.unpack_from("<II", raw, 4)
        return FileCapability(1, effective, permitted, inheritable)
    p0, i0, p1, i1 = struct.unpack_from("<IIII", raw, 4)
    rootid = struct.unpack_from("<I", raw, 20)[0] if revision == 3 else None
    return FileCapability(revision, effective, p0 | p1 << 32, i0 | i1 << 32, rootid)


def format_capability(cap: FileCapability) -> bytes:
    """Encode a :class:`FileCapability`; ``parse_capability`` of it gives it back.

    >>> format_capability(FileCapability(2, True, 8192, 0)).hex()
    '0100000200200000000000000000000000000000'
    """
    magic = cap.revision << 24 | (_FLAGS_EFFECTIVE if cap.effective else 0)
    if cap.revision == 1:
        return struct.pack("<III", magic, cap.permitted, cap.inheritable)
    body = struct.pack("<IIIII", magic, cap.permitted & 0xFFFFFFFF,
                       cap.inheritable & 0xFFFFFFFF, cap.permitted >> 32,
                       cap.inheritable >> 32)
    if cap.revision == 3:
        if cap.rootid is None:
            raise XattrFormatError("a revision 3 capability needs a rootid",
                                   reason="bad-capability")
        body += struct.pack("<I", cap.rootid)
    return body


def shift_capability(raw: bytes, uid: Callable[[int], int]) -> bytes:
    """``raw`` with its root uid translated by ``uid`` (revisions 1 and 2 come back unchanged).

    A revision 3 value whose root uid becomes 0 is returned as revision 2, which is how
    the kernel stores it when written from the initial namespace (and so what reading
    it back gives).

    >>> raw = format_capability(FileCapability(3, False, 1, 0, rootid=0))
    >>> parse_capability(shift_capability(raw, lambda u: u + 231072)).rootid
    231072
    >>> back = format_capability(FileCapability(3, False, 1, 0, rootid=231072))
    >>> parse_capability(shift_capability(back, lambda u: u - 231072))
    FileCapability(revision=2, effective=False, permitted=1, inheritable=0, rootid=None)
    """
    cap = parse_capability(raw)
    if cap.rootid is None:
        return raw
    rootid = uid(cap.rootid)
    if rootid == 0:
        return format_capability(attrs.evolve(cap, revision=2, rootid=None))
    return format_capability(attrs.evolve(cap, rootid=rootid))


@attrs.frozen
class ACLEntry:
    """One ACL entry: ``tag`` (kernel value), ``perm`` bits, ``id`` (``None`` unless named).

    >>> ACLEntry(0x02, 6, 1000).tag_name
    'user'
    """

    tag: int
    perm: int
    id: int | None = None

    @property
    def tag_name(self) -> str:
        """``user_obj``, ``user``, ``group_obj``, ``group``, ``mask`` or ``other``."""
        return _TAG_NAMES.get(self.tag, f"tag-{self.tag:#x}")


@attrs.frozen
class PosixACL:
    """A decoded POSIX ACL xattr: its entries in the stored order.

    >>> PosixACL(()).named_ids()
    ([], [])
    """

    entries: tuple[ACLEntry, ...]

    def named_ids(self) -> tuple[list[int], list[int]]:
        """The uids of the named user entries and the gids of the named group entries."""
        users = [e.id for e in self.entries if e.tag == _ACL_USER and e.id is not None]
        groups = [e.id for e in self.entries if e.tag == _ACL_GROUP and e.id is not None]
        return users, groups


def parse_acl(raw: bytes) -> PosixACL:
    """Decode a ``system.posix_acl_*`` value.

    >>> parse_acl(bytes.fromhex("02000000" "01000700ffffffff"))
    PosixACL(entries=(ACLEntry(tag=1, perm=7, id=None),))
    """
    if len(raw) < 4 or (len(raw) - 4) % 8:
        raise XattrFormatError(f"ACL value has a bad length: {len(raw)} bytes",
                               reason="bad-acl")
    (version,) = struct.unpack_from("<I", raw)
    if version != _ACL_VERSION:
        raise XattrFormatError(f"unknown ACL version {version}", reason="bad-acl")
    entries = []
    for tag, perm, eid in struct.iter_unpack("<HHI", raw[4:]):
        if tag not in _TAG_NAMES:
            raise XattrFormatError(f"unknown ACL tag {tag:#x}", reason="bad-acl")
        named = tag in (_ACL_USER, _ACL_GROUP)
        entries.append(ACLEntry(tag, perm, eid if named else None))
    return PosixACL(tuple(entries))


def format_acl(acl: PosixACL) -> bytes:
    """Encode a :class:`PosixACL`; ``parse_acl`` of it gives it back.

    >>> format_acl(PosixACL((ACLEntry(0x20, 4),))).hex()
    '0200000020000400ffffffff'
    """
    out = [struct.pack("<I", _ACL_VERSION)]
    for e in acl.entries:
        out.append(struct.pack("<HHI", e.tag, e.perm,
                               _ACL_UNDEFINED_ID if e.id is None else e.id))
    return b"".join(out)


def shift_acl(raw: bytes, uid: Callable[[int], int], gid: Callable[[int], int]) -> bytes:
    """``raw`` with every named user entry translated by ``uid`` and every named group by ``gid``.

    >>> raw = format_acl(PosixACL((ACLEntry(0x02, 6, 1), ACLEntry(0x02, 4, 2))))
    >>> parse_acl(shift_acl(raw, lambda u: u * 10, lambda g: g)).named_ids()
    ([10, 20], [])
    """
    acl = parse_acl(raw)
    entries = tuple(
        attrs.evolve(e, id=uid(e.id)) if e.tag == _ACL_USER and e.id is not None
        else attrs.evolve(e, id=gid(e.id)) if e.tag == _ACL_GROUP and e.id is not None
        else e
        for e in acl.entries
    )
    return format_acl(PosixACL(entries))
