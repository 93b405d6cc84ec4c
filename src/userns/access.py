"""Can container uid N read, write or search this host path, and which kernel rule decides?

Two halves, as everywhere in userns:

- the decision is pure: :func:`decide` takes the values read from the filesystem
  (:class:`Inode`, one per path component) and an :class:`Identity` (a map pair, the IDs
  inside, the capabilities) and returns an :class:`AccessResult`, following the order of
  the kernel's own checks (``fs/namei.c`` ``inode_permission``, ``generic_permission``,
  ``acl_permission_check``, ``may_create``, ``may_delete``, ``check_sticky``,
  ``may_follow_link``; ``fs/posix_acl.c`` ``posix_acl_permission``; ``fs/open.c``
  ``do_faccessat``; ``kernel/capability.c`` ``privileged_wrt_inode_uidgid``);
- :func:`walk` reads the filesystem at the edge (``lstat``, the
  ``system.posix_acl_access`` xattr, ``FS_IOC_GETFLAGS``, the mount's flags from
  ``/proc/self/mountinfo``) and :func:`analyze` is the two together.

The rules, in the kernel's order, for a wanted access (read, write, exec/search):

1. a read-only filesystem refuses write (``EROFS``); an immutable inode refuses write
   (``EPERM``); through an idmapped mount, an inode whose owner the mount does not map
   refuses write (``EACCES``);
2. the owner class: the identity's host uid owns the inode: the owner bits decide, ACL
   or not;
3. a POSIX ACL (only when the group bits of the mode are not all clear): a named user
   entry (limited by the mask), then the owning group and the named groups (any one that
   grants, limited by the mask; matching groups that all refuse mean "denied", not
   "other"), then the other entry;
4. without an ACL: the group bits when the identity is in the owning group, else the
   other bits;
5. capabilities, which count only when the inode's uid AND gid are both mapped in the
   identity's namespace (``privileged_wrt_inode_uidgid``): ``CAP_DAC_READ_SEARCH`` for
   reading (and searching a directory), ``CAP_DAC_OVERRIDE`` for everything else, but
   exec of a non-directory needs at least one x bit even then;
6. ``access(2)`` adds: exec of a regular file on a ``noexec`` mount is refused, and write
   on a read-only mount (``EROFS``) once the rest allowed it.

Creating in a directory needs write and search on it (``may_create``); deleting an entry
also needs the directory not append-only, and in a sticky directory the identity must own
the entry or the directory, or hold ``CAP_FOWNER`` over the entry (``check_sticky``).

>>> from userns.maps import IDMap, IDMapPair
>>> remap = IDMapPair.both(IDMap.single(0, 231072, 65536))
>>> root = Identity(remap)                      # container root: the full capability set
>>> etc = Inode("/etc", "directory", 0o755, 0, 0)
>>> hosts = Inode("/etc/hosts", "file", 0o644, 0, 0)
>>> r = decide([Inode("/", "directory", 0o755, 0, 0), etc, hosts], root)
>>> r.read.allowed, r.write.allowed, r.write.rule
(True, False, 'other')
>>> import textwrap; print(textwrap.fill(r.why, 80))
container uid 0 may read but not write or execute /etc/hosts: the owner, host
uid 0, is outside the map (inside it looks like 65534, nobody), so the group and
other bits decide: r--; CAP_DAC_OVERRIDE does not count: the owner's host uid 0
and gid 0 are outside the map
>>> mine = Inode("/srv/x", "file", 0o000, 231105, 231105)    # container uid 33's file
>>> decide([Inode("/", "directory", 0o755, 0, 0), mine], root).write.rule
'CAP_DAC_OVERRIDE'
"""

from __future__ import annotations

import errno as _errno
import fcntl
import os
import stat
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from .errors import AccessError
from .ids import OVERFLOW_ID
from .maps import IDMapPair
from .shift.xattrs import ACL_ACCESS, PosixACL, XattrFormatError, parse_acl

__all__ = [
    "ALL_CAPS",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "MAY_EXEC",
    "MAY_READ",
    "MAY_WRITE",
    "UNMAPPED",
    "AccessResult",
    "Component",
    "Identity",
    "Inode",
    "Verdict",
    "Walk",
    "access_verdict",
    "analyze",
    "analyze_many",
    "create_verdict",
    "decide",
    "decide_walk",
    "delete_verdict",
    "follow_verdict",
    "permission",
    "read_inode",
    "rwx",
    "unlink_verdict",
    "walk",
]

#: The access bits of the kernel's ``mask`` (``MAY_EXEC`` is search for a directory).
MAY_EXEC = 1
MAY_WRITE = 2
MAY_READ = 4

#: The three capabilities a file-permission decision looks at.
CAP_DAC_OVERRIDE = "CAP_DAC_OVERRIDE"
CAP_DAC_READ_SEARCH = "CAP_DAC_READ_SEARCH"
CAP_FOWNER = "CAP_FOWNER"
#: What a runtime gives container root (of the capabilities that matter here).
ALL_CAPS: frozenset[str] = frozenset({CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER})

Kind = Literal["directory", "file", "symlink", "other"]
ReadOnly = Literal["filesystem", "mount"]

_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20)


def rwx(bits: int) -> str:
    """``rwx`` text of three permission bits.

    >>> rwx(5), rwx(0)
    ('r-x', '---')
    """
    return "".join(c if bits & b else "-" for c, b in (("r", 4), ("w", 2), ("x", 1)))


# -- values -------------------------------------------------------------------------------


def _check_caps(instance: object, attribute: Any, value: frozenset[str]) -> None:
    unknown = sorted(set(value) - ALL_CAPS)
    if unknown:
        raise ValueError(f"'caps' may hold only {', '.join(sorted(ALL_CAPS))}: {unknown}")


def _default_caps(self: Identity) -> frozenset[str]:
    return ALL_CAPS if self.uid == 0 else frozenset()


def _int_tuple(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


def _str_set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


@attrs.frozen
class Identity:
    """Who asks: a user namespace's maps, the uid, gid and groups inside, the capabilities.

    ``caps`` defaults to what a container runtime gives: the full set for container root
    (uid 0), none for any other uid (``setresuid`` away from 0 clears them). Every ID must
    be mapped (the kernel would refuse ``setresuid``/``setgroups`` otherwise):
    :class:`~userns.errors.UnmappedIDError`.

    >>> from userns.maps import IDMap
    >>> who = Identity(IDMapPair.both(IDMap.single(0, 231072, 65536)), 33, 33, (100,))
    >>> who.host_uid, who.host_groups, sorted(who.caps)
    (231105, frozenset({231105, 231172}), [])
    """

    maps: IDMapPair
    uid: int = 0
    gid: int = attrs.field(default=attrs.Factory(lambda self: self.uid, takes_self=True))
    groups: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    caps: frozenset[str] = attrs.field(
        default=attrs.Factory(_default_caps, takes_self=True), converter=_str_set,
        validator=_check_caps)
    host_uid: int = attrs.field(init=False)
    host_gid: int = attrs.field(init=False)
    host_groups: frozenset[int] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        put = object.__setattr__
        put(self, "host_uid", self.maps.uid.to_host(self.uid))
        put(self, "host_gid", self.maps.gid.to_host(self.gid))
        put(self, "host_groups", frozenset(
            [self.host_gid, *(self.maps.gid.to_host(g) for g in self.groups)]))

    def in_group(self, host_gid: int | None) -> bool:
        """``in_group_p``: the gid inside or one of the groups is ``host_gid``."""
        return host_gid is not None and host_gid in self.host_groups

    def privileged_over(self, inode: Inode) -> bool:
        """``privileged_wrt_inode_uidgid``: the inode's uid AND gid are mapped here."""
        uid, gid = inode.seen_uid, inode.seen_gid
        return (uid is not None and gid is not None
                and self.maps.uid.to_container(uid, None) is not None
                and self.maps.gid.to_container(gid, None) is not None)

    def describe(self) -> str:
        """``container uid N`` (with the gid and groups when they are not the default)."""
        text = f"container uid {self.uid}"
        if self.gid != self.uid or self.groups:
            text += f" (gid {self.gid}"
            text += f", groups {','.join(map(str, self.groups))})" if self.groups else ")"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "gid": self.gid, "groups": list(self.groups),
                "host_uid": self.host_uid, "host_gid": self.host_gid,
                "caps": sorted(self.caps)}


@attrs.frozen
class Inode:
    """What the filesystem says about one path component: the inputs of a decision.

    ``uid`` and ``gid`` are the owner as the host reads it at this path. ``mount_map``,
    when the container reaches this inode through an idmapped mount, turns them into the
    IDs the permission check sees (``map.to_host(k)``; ``None`` when the mount does not
    map them, which the kernel treats as an invalid ID). ``readonly`` is ``filesystem``
    (the superblock: checked before anything else) or ``mount`` (checked last, after
    the permission bits), or ``None``.

    >>> Inode("/tmp", "directory", 0o1777, 0, 0).sticky
    True
    """

    path: str
    kind: Kind
    mode: int
    uid: int
    gid: int
    acl: PosixACL | None = None
    immutable: bool = False
    append_only: bool = False
    readonly: ReadOnly | None = None
    noexec: bool = False
    mount_map: IDMapPair | None = None
    mount_point: bool = False

    @property
    def is_dir(self) -> bool:
        return self.kind == "directory"

    @property
    def sticky(self) -> bool:
        return bool(self.mode & stat.S_ISVTX)

    @property
    def seen_uid(self) -> int | None:
        """The owner the permission check compares with (``i_uid_into_vfsuid``)."""
        return self._through_mount(self.uid, "uid")

    @property
    def seen_gid(self) -> int | None:
        return self._through_mount(self.gid, "gid")

    def _through_mount(self, on_disk: int, kind: str) -> int | None:
        """An on-disk ID as the idmapped mount shows it (``None``: unmapped there)."""
        if self.mount_map is None:
            return on_disk
        if on_disk < 0:
            return None
        m = self.mount_map.uid if kind == "uid" else self.mount_map.gid
        return m.to_host(on_disk, None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "kind": self.kind, "mode": f"{self.mode:04o}",
            "uid": self.uid, "gid": self.gid,
            "acl": None if self.acl is None else [
                {"tag": e.tag_name, "id": e.id, "perm": rwx(e.perm)} for e in self.acl.entries],
            "immutable": self.immutable, "append_only": self.append_only,
            "readonly": self.readonly, "noexec": self.noexec,
            "idmapped": self.mount_map is not None, "mount_point": self.mount_point,
        }


def _errno_name(code: int | None) -> str | None:
    return None if code is None else _errno.errorcode.get(code, str(code))


@attrs.frozen
class Verdict:
    """One decision: ``allowed``, the ``rule`` that decided it, the kernel's ``errno``
    when refused, and a sentence.

    Rules: ``owner``, ``group``, ``other`` (the mode's classes), ``acl-user``,
    ``acl-group``, ``acl-other``, ``acl-mask`` (a POSIX ACL entry; ``acl-mask`` when the
    entry grants but the mask takes it away), ``CAP_DAC_OVERRIDE``,
    ``CAP_DAC_READ_SEARCH``, ``CAP_FOWNER``, ``no-exec-bit``, ``read-only``,
    ``immutable``, ``append-only``, ``noexec-mount``, ``sticky``, ``unmapped-owner``,
    ``unmapped-caller`` (idmapped mounts), ``search`` (a directory on the way),
    ``protected-symlink``, ``owner-of-entry``/``owner-of-directory`` (sticky exemptions),
    ``mount-point`` (a mount point cannot be removed).

    >>> Verdict(False, "other", _errno.EACCES, "x").to_dict()["errno"]
    'EACCES'
    """

    allowed: bool
    rule: str
    errno: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "rule": self.rule,
                "errno": _errno_name(self.errno), "detail": self.detail}


def _yes(rule: str, detail: str) -> Verdict:
    return Verdict(True, rule, None, detail)


def _no(rule: str, detail: str, code: int = _errno.EACCES) -> Verdict:
    return Verdict(False, rule, code, detail)


# -- the pure decision ------------------------------------------------------------------


def _owner_phrase(ino: Inode, who: Identity) -> str:
    """``the owner, host uid 0, is outside the map (inside it looks like 65534, nobody)``..."""
    uid = ino.seen_uid
    if uid is None:
        return f"the owner, on-disk uid {ino.uid}, is not mapped by the idmapped mount"
    inside = who.maps.uid.to_container(uid, None)
    if inside is None:
        return (f"the owner, host uid {uid}, is outside the map "
                f"(inside it looks like {OVERFLOW_ID}, nobody)")
    return f"the owner is host uid {uid} (container uid {inside})"


def _dac(ino: Inode, who: Identity, want: int) -> Verdict:
    """``acl_permission_check`` (+ ``posix_acl_permission``): the mode and the ACL alone."""
    mode = ino.mode
    want &= 7
    if ino.seen_uid is not None and ino.seen_uid == who.host_uid:
        bits = mode >> 6 & 7
        text = f"it is the owner (host uid {who.host_uid}): owner bits {rwx(bits)}"
        return _yes("owner", text) if not want & ~bits else _no("owner", text)
    if ino.acl is not None and mode & 0o070:
        found = _acl(ino, who, want)
        if found is not None:
            return found
    # The kernel looks at the owning group only where the group and other bits differ
    # for what is wanted; the answer is the same, and naming the group is clearer.
    if who.in_group(ino.seen_gid):
        bits = mode >> 3 & 7
        text = (f"{_owner_phrase(ino, who)}; it is in the owning group "
                f"(host gid {ino.seen_gid}): group bits {rwx(bits)}")
        return _yes("group", text) if not want & ~bits else _no("group", text)
    bits = mode & 7
    if want & (mode ^ mode >> 3):
        text = (f"{_owner_phrase(ino, who)}, and it is not in the owning group "
                f"(host gid {ino.seen_gid}), so the other bits decide: {rwx(bits)}")
    else:
        text = f"{_owner_phrase(ino, who)}, so the group and other bits decide: {rwx(bits)}"
    return _yes("other", text) if not want & ~bits else _no("other", text)


def _acl(ino: Inode, who: Identity, want: int) -> Verdict | None:
    """``posix_acl_permission``; ``None`` for an ACL the kernel would answer EIO for."""
    assert ino.acl is not None
    entries = ino.acl.entries
    found = False
    for i, e in enumerate(entries):
        if e.tag == _ACL_USER_OBJ:
            continue  # the owner was handled before: acl_permission_check
        if e.tag == _ACL_USER:
            if e.id is not None and ino._through_mount(e.id, "uid") == who.host_uid:
                return _masked(entries, i, want, "acl-user", f"named user entry user:{e.id}")
        elif e.tag in (_ACL_GROUP_OBJ, _ACL_GROUP):
            gid = ino.seen_gid if e.tag == _ACL_GROUP_OBJ else (
                None if e.id is None else ino._through_mount(e.id, "gid"))
            if who.in_group(gid):
                found = True
                if e.perm & want == want:
                    what = (f"owning group entry group::{rwx(e.perm)}" if e.tag == _ACL_GROUP_OBJ
                            else f"named group entry group:{e.id}:{rwx(e.perm)}")
                    return _masked(entries, i, want, "acl-group", what)
        elif e.tag == _ACL_OTHER:
            if found:
                return _no("acl-group", "it is in a group the ACL names (owning or named), "
                           f"and none of those entries grants {rwx(want)}: the other entry "
                           "does not apply")
            text = f"no ACL entry names it, so the other entry decides: {rwx(e.perm)}"
            return _yes("acl-other", text) if e.perm & want == want else _no("acl-other", text)
    return None


def _masked(entries: Sequence[Any], i: int, want: int, rule: str, what: str) -> Verdict:
    perm = entries[i].perm
    for m in entries[i + 1:]:
        if m.tag == _ACL_MASK:
            if perm & m.perm & want == want:
                return _yes(rule, f"the {what} grants it, within the mask {rwx(m.perm)}")
            if perm & want == want:
                return _no("acl-mask", f"the {what} grants it but the mask {rwx(m.perm)} "
                           "takes it away")
            return _no(rule, f"the {what} does not grant {rwx(want)}")
    text = f"the {what} decides: {rwx(perm)}"
    return _yes(rule, text) if perm & want == want else _no(rule, text)


def _caps_note(ino: Inode, who: Identity, cap: str) -> str:
    if cap not in who.caps:
        return ""
    uid, gid = ino.seen_uid, ino.seen_gid
    outside = []
    if uid is None or who.maps.uid.to_container(uid, None) is None:
        outside.append(f"uid {uid if uid is not None else ino.uid}")
    if gid is None or who.maps.gid.to_container(gid, None) is None:
        outside.append(f"gid {gid if gid is not None else ino.gid}")
    if not outside:
        return ""
    return (f"; {cap} does not count: the owner's host {' and '.join(outside)} "
            f"{'is' if len(outside) == 1 else 'are'} outside the map")


def _generic(ino: Inode, who: Identity, want: int) -> Verdict:
    """``generic_permission``: the mode/ACL check, then the capabilities."""
    dac = _dac(ino, who, want)
    if dac.allowed:
        return dac
    mapped = who.privileged_over(ino)
    if ino.is_dir:
        if not want & MAY_WRITE and CAP_DAC_READ_SEARCH in who.caps and mapped:
            return _yes(CAP_DAC_READ_SEARCH, f"{dac.detail}, but CAP_DAC_READ_SEARCH "
                        "over an inode whose owner and group are mapped overrides it")
        if CAP_DAC_OVERRIDE in who.caps and mapped:
            return _yes(CAP_DAC_OVERRIDE, f"{dac.detail}, but CAP_DAC_OVERRIDE over an "
                        "inode whose owner and group are mapped overrides it")
        cap = CAP_DAC_OVERRIDE if want & MAY_WRITE else CAP_DAC_READ_SEARCH
        return attrs.evolve(dac, detail=dac.detail + _caps_note(ino, who, cap))
    want &= 7
    if want == MAY_READ and CAP_DAC_READ_SEARCH in who.caps and mapped:
        return _yes(CAP_DAC_READ_SEARCH, f"{dac.detail}, but CAP_DAC_READ_SEARCH over an "
                    "inode whose owner and group are mapped overrides it")
    if not want & MAY_EXEC or ino.mode & 0o111:
        if CAP_DAC_OVERRIDE in who.caps and mapped:
            return _yes(CAP_DAC_OVERRIDE, f"{dac.detail}, but CAP_DAC_OVERRIDE over an "
                        "inode whose owner and group are mapped overrides it")
    elif CAP_DAC_OVERRIDE in who.caps and mapped:
        return _no("no-exec-bit", f"{dac.detail}; CAP_DAC_OVERRIDE does not make a file "
                   "executable that has no x bit at all")
    return attrs.evolve(dac, detail=dac.detail + _caps_note(ino, who, CAP_DAC_OVERRIDE))


def permission(ino: Inode, who: Identity, want: int) -> Verdict:
    """``inode_permission``: may ``who`` have ``want`` (``MAY_*`` bits) on this inode?

    >>> from userns.maps import IDMap
    >>> ident = Identity(IDMapPair.both(IDMap.identity()))
    >>> permission(Inode("/etc/shadow", "file", 0o640, 0, 42), ident, MAY_WRITE).rule
    'owner'
    """
    if want & MAY_WRITE:
        if ino.readonly == "filesystem" and ino.kind in ("file", "directory", "symlink"):
            return _no("read-only", f"{ino.path} is on a read-only filesystem", _errno.EROFS)
        if ino.immutable:
            return _no("immutable", f"{ino.path} is immutable (chattr +i): nobody may "
                       "change it, root included", _errno.EPERM)
        if ino.seen_uid is None or ino.seen_gid is None:
            return _no("unmapped-owner", f"the idmapped mount does not map the owner of "
                       f"{ino.path} (on-disk {ino.uid}:{ino.gid}), so nobody may change it")
    return _generic(ino, who, want)


def access_verdict(ino: Inode, who: Identity, want: int) -> Verdict:
    """``faccessat(AT_EACCESS)`` on the inode itself: :func:`permission` plus the mount's
    ``noexec`` and read-only flags."""
    if want & MAY_EXEC and ino.kind == "file" and ino.noexec:
        return _no("noexec-mount", f"{ino.path} is on a noexec mount: no file there is "
                   "executable")
    v = permission(ino, who, want)
    if v.allowed and want & MAY_WRITE and ino.readonly == "mount" and ino.kind in (
            "file", "directory", "symlink"):
        return _no("read-only", f"{v.detail}, but {ino.path} is on a read-only mount",
                   _errno.EROFS)
    return v


def follow_verdict(link: Inode, parent: Inode, who: Identity, protected: bool) -> Verdict:
    """``may_follow_link`` (``fs.protected_symlinks``): in a sticky world-writable
    directory, only the link's owner, or links owned by the directory's owner, are followed.
    """
    if not protected:
        return _yes("symlink", "fs.protected_symlinks is off")
    if link.seen_uid is not None and link.seen_uid == who.host_uid:
        return _yes("symlink", "it owns the symlink")
    if parent.mode & 0o1002 != 0o1002:
        return _yes("symlink", "the directory holding it is not sticky and world-writable")
    if parent.seen_uid is not None and parent.seen_uid == link.seen_uid:
        return _yes("symlink", "the symlink and its directory have the same owner")
    return _no("protected-symlink", f"{link.path} is in a sticky world-writable directory "
               "and owned by neither the identity nor the directory's owner "
               "(fs.protected_symlinks)")


def _search_first(d: Inode, who: Identity) -> Verdict | None:
    """The path walk looks into ``d`` before anything else is checked (``may_lookup``)."""
    s = permission(d, who, MAY_EXEC)
    if s.allowed:
        return None
    return _no("search", f"{d.path} cannot be searched: {s.detail}", s.errno or _errno.EACCES)


def create_verdict(d: Inode, who: Identity) -> Verdict:
    """``may_create``: the walk searches the directory, then ``mnt_want_write`` (read-only
    mounts), then write and search on the directory."""
    refused = _search_first(d, who)
    if refused is not None:
        return refused
    if d.readonly is not None:
        return _no("read-only", f"{d.path} is on a read-only {d.readonly}", _errno.EROFS)
    if d.mount_map is not None and (
            d.mount_map.uid.to_container(who.host_uid, None) is None
            or d.mount_map.gid.to_container(who.host_gid, None) is None):
        return _no("unmapped-caller", f"the idmapped mount of {d.path} does not map the "
                   f"identity's host uid {who.host_uid}/gid {who.host_gid}: a new file "
                   "would have no owner on disk", _errno.EOVERFLOW)
    return permission(d, who, MAY_WRITE | MAY_EXEC)


def delete_verdict(d: Inode, who: Identity) -> Verdict:
    """May ``who`` delete entries of directory ``d`` that it does not own?

    The directory half of ``may_delete``: write and search on it, not append-only; in a
    sticky directory only the directory's owner may (or ``CAP_FOWNER`` over the entry,
    which depends on the entry: :func:`unlink_verdict` answers for one entry).
    """
    refused = _search_first(d, who)
    if refused is not None:
        return refused
    if d.readonly is not None:
        return _no("read-only", f"{d.path} is on a read-only {d.readonly}", _errno.EROFS)
    v = permission(d, who, MAY_WRITE | MAY_EXEC)
    if not v.allowed:
        return v
    if d.append_only:
        return _no("append-only", f"{d.path} is append-only (chattr +a): entries may be "
                   "added, never removed", _errno.EPERM)
    if d.sticky and d.seen_uid != who.host_uid:
        note = (" (or, with CAP_FOWNER, entries whose owner and group are mapped)"
                if CAP_FOWNER in who.caps else "")
        return _no("sticky", f"{d.path} is sticky and not the identity's: it may delete "
                   f"only its own entries{note}", _errno.EPERM)
    return v


def unlink_verdict(d: Inode, victim: Inode, who: Identity) -> Verdict:
    """``may_delete`` (after ``mnt_want_write``): may ``who`` remove ``victim`` from ``d``?"""
    if d.readonly is not None:
        return _no("read-only", f"{d.path} is on a read-only {d.readonly}", _errno.EROFS)
    if victim.seen_uid is None or victim.seen_gid is None:
        return _no("unmapped-owner", f"the idmapped mount does not map the owner of "
                   f"{victim.path}", _errno.EOVERFLOW)
    v = permission(d, who, MAY_WRITE | MAY_EXEC)
    if not v.allowed:
        return v
    if d.append_only:
        return _no("append-only", f"{d.path} is append-only (chattr +a): entries may be "
                   "added, never removed", _errno.EPERM)
    if d.sticky:
        if victim.seen_uid == who.host_uid:
            v = _yes("owner-of-entry", f"{d.path} is sticky, and the identity owns "
                     f"{victim.path}")
        elif d.seen_uid == who.host_uid:
            v = _yes("owner-of-directory", f"{d.path} is sticky, and the identity owns it")
        elif CAP_FOWNER in who.caps and who.privileged_over(victim):
            v = _yes(CAP_FOWNER, f"{d.path} is sticky, but CAP_FOWNER over an entry whose "
                     "owner and group are mapped overrides it")
        else:
            return _no("sticky", f"{d.path} is sticky: only the owner of {victim.path} "
                       f"or of the directory may remove it ({_owner_phrase(victim, who)})"
                       + _caps_note(victim, who, CAP_FOWNER), _errno.EPERM)
    if victim.append_only or victim.immutable:
        what = "immutable" if victim.immutable else "append-only"
        return _no(what, f"{victim.path} is {what}: it cannot be removed", _errno.EPERM)
    if victim.mount_point:
        # The kernel checks the directory the mount covers, which the host cannot see
        # without unmounting; the mounted root stands in for it here.
        return _no("mount-point", f"{victim.path} is a mount point: it cannot be removed "
                   "while mounted", _errno.EBUSY)
    return v


@attrs.frozen
class Component:
    """One step of the walk: the inode, how its owner looks inside, and the verdicts
    that concern it (``search`` for a directory that is looked into, ``follow`` for a
    symlink that is followed; ``None`` otherwise)."""

    inode: Inode
    view_uid: int
    view_gid: int
    uid_mapped: bool
    gid_mapped: bool
    search: Verdict | None = None
    follow: Verdict | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.inode.to_dict(), "container_uid": self.view_uid,
                "container_gid": self.view_gid, "uid_mapped": self.uid_mapped,
                "gid_mapped": self.gid_mapped,
                "search": None if self.search is None else self.search.to_dict(),
                "follow": None if self.follow is None else self.follow.to_dict()}


@attrs.frozen
class AccessResult:
    """The analysis of one path for one identity.

    ``read``, ``write``, ``exec`` (search for a directory) include the walk: a directory
    on the way that cannot be searched refuses all three (rule ``search``). ``create``
    and ``delete`` (entries of a directory; ``None`` for other files) and ``unlink``
    (removing the path itself from its directory; ``None`` for the start of the walk).
    """

    path: str
    identity: Identity
    components: tuple[Component, ...]
    read: Verdict
    write: Verdict
    exec: Verdict
    create: Verdict | None
    delete: Verdict | None
    unlink: Verdict | None
    why: str

    @property
    def may(self) -> dict[str, bool]:
        return {"read": self.read.allowed, "write": self.write.allowed,
                "exec": self.exec.allowed}

    def to_dict(self) -> dict[str, Any]:
        def v(x: Verdict | None) -> Any:
            return None if x is None else x.to_dict()

        return {
            "path": self.path, "identity": self.identity.to_dict(), "may": self.may,
            "create": None if self.create is None else self.create.allowed,
            "delete": None if self.delete is None else self.delete.allowed,
            "unlink": None if self.unlink is None else self.unlink.allowed,
            "verdicts": {"read": v(self.read), "write": v(self.write), "exec": v(self.exec),
                         "create": v(self.create), "delete": v(self.delete),
                         "unlink": v(self.unlink)},
            "components": [c.to_dict() for c in self.components], "why": self.why,
        }


def _view(ino: Inode, who: Identity) -> tuple[int, int, bool, bool]:
    u, g = ino.seen_uid, ino.seen_gid
    cu = None if u is None else who.maps.uid.to_container(u, None)
    cg = None if g is None else who.maps.gid.to_container(g, None)
    return (OVERFLOW_ID if cu is None else cu, OVERFLOW_ID if cg is None else cg,
            cu is not None, cg is not None)


def decide(
    components: Sequence[Inode],
    who: Identity,
    *,
    via: Sequence[int | None] | None = None,
    leaf: int | None = None,
    protected_symlinks: bool = False,
) -> AccessResult:
    """The whole analysis over values: ``components`` from the start of the walk down.

    ``via[i]`` is the index of the directory component ``i`` was looked up in (``None``
    for the start and for a restart at ``/`` by an absolute symlink); by default each
    component is looked up in the one before. ``leaf`` is the index of the last name of
    the path as given (before a final symlink is followed; default: the last component).
    """
    n = len(components)
    if n == 0:
        raise ValueError("decide needs at least one component")
    vias: list[int | None] = list(via) if via is not None else [None, *range(n - 1)]
    leaf_i = n - 1 if leaf is None else leaf
    comps: list[Component] = []
    blocked: Verdict | None = None   # the first refusal on the way to the last component
    blocked_at: int | None = None
    searched = {v for v in vias if v is not None}
    for i, ino in enumerate(components):
        search = follow = None
        if i in searched and ino.is_dir:
            search = permission(ino, who, MAY_EXEC)
        if ino.kind == "symlink" and i + 1 < n:
            at = vias[i]
            parent = components[at] if at is not None else ino
            follow = follow_verdict(ino, parent, who, protected_symlinks)
        comps.append(Component(ino, *_view(ino, who), search=search, follow=follow))
    # Walk in order: the first directory that cannot be searched, or symlink not followed,
    # stops everything after it.
    for i, c in enumerate(comps):
        for v in (c.search, c.follow):
            if v is not None and not v.allowed and blocked is None:
                blocked = _no("search" if v is c.search else v.rule,
                              f"{c.inode.path} cannot be "
                              f"{'searched' if v is c.search else 'followed'}: {v.detail}",
                              v.errno or _errno.EACCES)
                blocked_at = i
    last = components[-1]
    # Reaching the last component needs every directory looked into before it.
    if blocked is not None and blocked_at is not None and blocked_at < n - 1:
        read = write = execute = blocked
    else:
        read = access_verdict(last, who, MAY_READ)
        write = access_verdict(last, who, MAY_WRITE)
        execute = access_verdict(last, who, MAY_EXEC)
    create = delete = None
    if last.is_dir:
        if blocked is not None:
            create = delete = blocked
        else:
            create = create_verdict(last, who)
            delete = delete_verdict(last, who)
    unlink = None
    parent_i = vias[leaf_i]
    if parent_i is not None:
        stop = blocked_at is not None and blocked_at <= parent_i
        unlink = blocked if stop and blocked is not None else unlink_verdict(
            components[parent_i], components[leaf_i], who)
    result_path = components[leaf_i].path
    why = _summary(result_path, who, last, read, write, execute, blocked
                   if blocked_at is not None and blocked_at < n - 1 else None)
    return AccessResult(result_path, who, tuple(comps), read, write, execute, create,
                        delete, unlink, why)


def _summary(path: str, who: Identity, last: Inode, read: Verdict, write: Verdict,
             execute: Verdict, blocked: Verdict | None) -> str:
    x = "search" if last.is_dir else "execute"
    if blocked is not None:
        return f"{who.describe()} cannot reach {path}: {blocked.detail}"
    names = [("read", read), ("write", write), (x, execute)]
    yes = [n for n, v in names if v.allowed]
    no = [n for n, v in names if not v.allowed]
    if not no:
        head = f"{who.describe()} may read, write and {x} {path}"
        reason = write
    elif not yes:
        head = f"{who.describe()} may not read, write or {x} {path}"
        reason = read
    else:
        head = f"{who.describe()} may {' and '.join(yes)} but not {' or '.join(no)} {path}"
        reason = write if not write.allowed else next(v for _, v in names if not v.allowed)
    return f"{head}: {reason.detail}"


# -- reading the filesystem -------------------------------------------------------------

_FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long) on 64-bit
_FS_IMMUTABLE_FL = 0x00000010
_FS_APPEND_FL = 0x00000020


@attrs.frozen
class _Mount:
    mount_ro: bool
    super_ro: bool
    noexec: bool
    idmapped: bool


def _read_mounts(proc: str = "/proc") -> dict[int, _Mount]:
    out: dict[int, _Mount] = {}
    try:
        with open(f"{proc}/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, tail = left.split(), right.split()
                if len(fields) < 6 or len(tail) < 3:
                    continue
                opts, sopts = fields[5].split(","), tail[2].split(",")
                out[int(fields[0])] = _Mount("ro" in opts, "ro" in sopts, "noexec" in opts,
                                             "idmapped" in opts)
    except OSError:
        pass
    return out


def _mount_id(path: str, proc: str) -> int | None:
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with open(f"{proc}/self/fdinfo/{fd}", encoding="ascii") as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def _flags(path: str, kind: str) -> int:
    if kind not in ("file", "directory"):
        return 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY
                     | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        raw = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))
        value: int = struct.unpack_from("<I", raw)[0]
        return value
    except OSError:
        return 0
    finally:
        os.close(fd)


def _kind(mode: int) -> Kind:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def read_inode(
    path: str,
    *,
    mount_map: IDMapPair | None = None,
    mounts: Mapping[int, Any] | None = None,
    idmaps: dict[int, IDMapPair] | None = None,
    proc: str = "/proc",
) -> Inode:
    """Read one component: ``lstat``, the access ACL, the immutable/append-only flags
    (``FS_IOC_GETFLAGS``, left clear where they cannot be read), the mount's read-only
    and noexec flags (``/proc/self/mountinfo``).

    A component on an idmapped mount (and no ``mount_map`` given) gets that mount's maps
    (:func:`userns.mount.read_idmap`, cached in ``idmaps`` by mount ID), and its owner
    and ACL IDs are turned back into on-disk IDs; an owner the mount does not map (the
    host reads the overflow ID) becomes :data:`UNMAPPED`.

    >>> read_inode("/").kind
    'directory'
    """
    try:
        st = os.lstat(path)
    except OSError as e:
        raise AccessError(f"cannot read {path}: {e.strerror}", reason="io",
                          path=path, errno=e.errno) from e
    kind = _kind(st.st_mode)
    acl = None
    if kind != "symlink":
        try:
            acl = parse_acl(os.getxattr(path, ACL_ACCESS, follow_symlinks=False))
        except OSError:
            acl = None  # no ACL (ENODATA), or the filesystem has none (EOPNOTSUPP)
        except XattrFormatError as e:
            raise AccessError(f"{path}: unreadable {ACL_ACCESS}: {e.message}",
                              reason="bad-acl", path=path) from e
    flags = _flags(path, kind)
    table = _read_mounts(proc) if mounts is None else mounts
    mnt_id = _mount_id(path, proc)
    m = table.get(mnt_id or -1)
    parent = os.path.dirname(path.rstrip("/")) or "/"
    mount_point = path.rstrip("/") != "" and mnt_id is not None and kind == "directory" \
        and _mount_id(parent, proc) != mnt_id
    readonly: ReadOnly | None = None
    if m is not None:
        readonly = "filesystem" if m.super_ro else "mount" if m.mount_ro else None
    else:
        try:
            readonly = "mount" if os.statvfs(path).f_flag & os.ST_RDONLY else None
        except OSError:
            readonly = None
    uid, gid = st.st_uid, st.st_gid
    if mount_map is None and m is not None and m.idmapped and mnt_id is not None:
        mount_map = _idmap_of(path, mnt_id, idmaps)
        uid, gid, acl = _on_disk(mount_map, uid, gid, acl)
    return Inode(path, kind, stat.S_IMODE(st.st_mode), uid, gid, acl,
                 bool(flags & _FS_IMMUTABLE_FL), bool(flags & _FS_APPEND_FL), readonly,
                 bool(m is not None and m.noexec), mount_map, mount_point)


#: The owner of an inode whose on-disk ID an idmapped mount does not map (it reads as the
#: overflow ID through the mount; the kernel treats it as invalid).
UNMAPPED = -1


def _idmap_of(path: str, mnt_id: int, cache: dict[int, IDMapPair] | None) -> IDMapPair:
    if cache is not None and mnt_id in cache:
        return cache[mnt_id]
    from .errors import MountError
    from .mount import read_idmap

    try:
        pair = read_idmap(path)
    except MountError as e:
        raise AccessError(f"{path} is on an idmapped mount whose maps cannot be read "
                          f"({e.message}); give them as mount_map", reason="idmap-unknown",
                          path=path, errno=e.errno) from e
    if pair is None:  # pragma: no cover - mountinfo said idmapped a moment ago
        raise AccessError(f"{path}: the mount stopped being idmapped while it was read",
                          reason="idmap-unknown", path=path)
    if cache is not None:
        cache[mnt_id] = pair
    return pair


def _on_disk(pair: IDMapPair, uid: int, gid: int,
             acl: PosixACL | None) -> tuple[int, int, PosixACL | None]:
    """IDs read through an idmapped mount, back to what is stored on disk."""
    def back(m: Any, seen: int) -> int:
        if seen >= 0xFFFFFFFF:  # an ACL entry the mount does not map reads as (uid_t)-1
            return UNMAPPED
        disk: int | None = m.to_container(seen, None)
        return UNMAPPED if disk is None else disk

    if acl is not None:
        acl = PosixACL(tuple(
            attrs.evolve(e, id=back(pair.uid if e.tag == _ACL_USER else pair.gid, e.id))
            if e.id is not None else e for e in acl.entries))
    return back(pair.uid, uid), back(pair.gid, gid), acl


@attrs.frozen
class Walk:
    """What :func:`walk` read: the components, where each was looked up, the leaf."""

    components: tuple[Inode, ...]
    via: tuple[int | None, ...]
    leaf: int
    protected_symlinks: bool


_MAX_LINKS = 40  # the kernel's MAXSYMLINKS


def _protected_symlinks(proc: str) -> bool:
    try:
        with open(f"{proc}/sys/fs/protected_symlinks", encoding="ascii") as f:
            return f.read().strip() != "0"
    except OSError:
        return True


def walk(
    path: str | os.PathLike[str],
    *,
    start: str = "/",
    mount_map: IDMapPair | None = None,
    mount_at: str | None = None,
    proc: str = "/proc",
) -> Walk:
    """Read every component from ``start`` down to ``path``, following symlinks as the
    kernel does (an absolute target restarts at ``/``; ``..`` goes to the parent).

    ``start`` is where the container reaches the tree (its bind mount's source, say):
    directories above it are not looked at. ``mount_map`` is the idmapped mount the
    container reaches the tree through, mounted at ``mount_at`` (default: ``start``): give
    the on-disk path, and every component at or under ``mount_at`` is seen through the
    map (``mount_at`` itself is then a mount point). Without ``mount_map``, a component
    that is on an idmapped mount gets that mount's maps (:func:`read_inode`); the host
    may be unable to read such a tree where the mount leaves owners unmapped: walk the
    mount's source with ``mount_map`` instead.
    """
    text = os.path.abspath(os.fspath(path))
    start = os.path.abspath(start)
    if os.path.commonpath([start, text]) != start:
        raise AccessError(f"{text} is not under {start}", reason="outside-start", path=text)
    mounts = _read_mounts(proc)
    idmaps: dict[int, IDMapPair] = {}
    at = os.path.abspath(mount_at) if mount_at is not None else start

    def read(p: str) -> Inode:
        mapped = mount_map is not None and os.path.commonpath([at, p]) == at
        ino = read_inode(p, mount_map=mount_map if mapped else None, mounts=mounts,
                         idmaps=idmaps, proc=proc)
        return attrs.evolve(ino, mount_point=True) if mapped and p == at else ino

    comps: list[Inode] = [read(start)]
    via: list[int | None] = [None]
    dirs: list[int] = [0]  # the stack of directory components (for "..")
    names = [p for p in os.path.relpath(text, start).split("/") if p not in ("", ".")]
    # (name, is it the last name of the path as given?): a stack, next name on top
    pending = [(p, i == len(names) - 1) for i, p in enumerate(names)]
    pending.reverse()
    links = 0
    leaf = 0
    while pending:
        name, is_leaf = pending.pop()
        cur = dirs[-1]
        if name == "..":
            parent = os.path.dirname(comps[cur].path)
            comps.append(read(parent))
            via.append(cur)
            if len(dirs) > 1:
                dirs.pop()
            else:
                dirs[-1] = len(comps) - 1
            if is_leaf:
                leaf = len(comps) - 1
            continue
        if not comps[cur].is_dir:
            raise AccessError(f"{comps[cur].path} is not a directory", reason="not-a-directory",
                              path=comps[cur].path, errno=_errno.ENOTDIR)
        child = os.path.join(comps[cur].path, name)
        comps.append(read(child))
        via.append(cur)
        here = len(comps) - 1
        if is_leaf:
            leaf = here
        if comps[here].kind == "symlink":
            links += 1
            if links > _MAX_LINKS:
                raise AccessError(f"too many symlinks resolving {text}", reason="loop",
                                  path=text, errno=_errno.ELOOP)
            target = os.readlink(child)
            parts = [p for p in target.split("/") if p not in ("", ".")]
            pending.extend((p, False) for p in reversed(parts))
            if target.startswith("/"):
                comps.append(read("/"))
                via.append(None)
                dirs = [len(comps) - 1]
        elif comps[here].is_dir:
            dirs.append(here)
    return Walk(tuple(comps), tuple(via), leaf, _protected_symlinks(proc))


def analyze(
    path: str | os.PathLike[str],
    who: Identity,
    *,
    start: str = "/",
    mount_map: IDMapPair | None = None,
    mount_at: str | None = None,
    proc: str = "/proc",
) -> AccessResult:
    """Read the components of ``path`` (:func:`walk`) and :func:`decide` for ``who``.

    ``mount_map`` (optional) is the idmapped mount the container reaches ``mount_at``
    (default ``start``) through, given over the on-disk path; a path that is itself on an
    idmapped mount is read with that mount's maps (see :func:`walk`).
    """
    w = walk(path, start=start, mount_map=mount_map, mount_at=mount_at, proc=proc)
    return decide_walk(w, who)


def decide_walk(w: Walk, who: Identity) -> AccessResult:
    """:func:`decide` over a :class:`Walk` (one walk, many identities)."""
    return decide(w.components, who, via=w.via, leaf=w.leaf,
                  protected_symlinks=w.protected_symlinks)


def analyze_many(paths: Iterable[str], who: Identity, **kw: Any) -> list[AccessResult]:
    """:func:`analyze` for each path."""
    return [analyze(p, who, **kw) for p in paths]
