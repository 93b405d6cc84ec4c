"""passwd and group data supplied by the caller: a root directory, texts, or values.

Subid owners are user names or numeric uids, so reading a subid file needs the account
database of the SYSTEM THE FILE BELONGS TO, which is often not the running host (an
image, a ``--prefix`` directory, a test fixture). :class:`Accounts` holds that data;
nothing here asks the running host's NSS.

>>> acc = Accounts.parse("root:x:0:0::/root:/bin/sh\\nalice:x:1000:1000::/home/alice:/bin/sh\\n",
...                      "root:x:0:\\nalice:x:1000:\\ndocker:x:999:alice\\n")
>>> acc.uid_of("alice"), acc.gid_of("docker"), acc.user_by_uid(0).name
(1000, 999, 'root')
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import attrs

from ..ids import ID_MAX
from ..ranges import IDSet

__all__ = ["Accounts", "GroupEntry", "PasswdEntry"]


@attrs.frozen
class PasswdEntry:
    """One ``/etc/passwd`` line: name, uid, primary gid, and its 1-based line number."""

    name: str
    uid: int
    gid: int
    lineno: int = attrs.field(default=0, eq=False, repr=False)


@attrs.frozen
class GroupEntry:
    """One ``/etc/group`` line: name, gid, members, and its 1-based line number."""

    name: str
    gid: int
    members: tuple[str, ...] = ()
    lineno: int = attrs.field(default=0, eq=False, repr=False)


def _fields(text: str) -> Iterator[tuple[int, list[str]]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        # glibc's files backend skips blank lines and comments; NIS compat lines are not
        # accounts of this file.
        if not stripped or stripped.startswith("#") or line[:1] in ("+", "-"):
            continue
        yield lineno, line.split(":")


def _id(text: str) -> int | None:
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= ID_MAX else None


def _user_tuple(items: Iterable[PasswdEntry]) -> tuple[PasswdEntry, ...]:
    return tuple(items)


def _group_tuple(items: Iterable[GroupEntry]) -> tuple[GroupEntry, ...]:
    return tuple(items)


@attrs.frozen
class Accounts:
    """Users and groups of one system, looked up by name or ID (first line wins).

    ``Accounts.read(root)`` reads ``<root>/etc/passwd`` and ``<root>/etc/group``;
    ``Accounts.parse(passwd, group)`` takes their texts; ``Accounts(users, groups)``
    takes values. A missing file is an empty database.

    >>> acc = Accounts([PasswdEntry("seb", 1000, 1000)], [GroupEntry("seb", 1000)])
    >>> acc.user("seb"), acc.user("nobody")
    (PasswdEntry(name='seb', uid=1000, gid=1000), None)
    """

    users: tuple[PasswdEntry, ...] = attrs.field(default=(), converter=_user_tuple)
    groups: tuple[GroupEntry, ...] = attrs.field(default=(), converter=_group_tuple)
    _index: dict[tuple[str, object], PasswdEntry | GroupEntry] = attrs.field(
        init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # First line wins, as getpwnam/getpwuid over a files database.
        index: dict[tuple[str, object], PasswdEntry | GroupEntry] = {}
        for u in self.users:
            index.setdefault(("user", u.name), u)
            index.setdefault(("uid", u.uid), u)
        for g in self.groups:
            index.setdefault(("group", g.name), g)
            index.setdefault(("gid", g.gid), g)
        object.__setattr__(self, "_index", index)

    @classmethod
    def parse(cls, passwd: str = "", group: str = "") -> Accounts:
        """Accounts from the texts of a passwd and a group file (bad lines skipped)."""
        users: list[PasswdEntry] = []
        for lineno, f in _fields(passwd):
            if len(f) < 4 or not f[0]:
                continue
            uid, gid = _id(f[2]), _id(f[3])
            if uid is not None and gid is not None:
                users.append(PasswdEntry(f[0], uid, gid, lineno))
        groups: list[GroupEntry] = []
        for lineno, f in _fields(group):
            if len(f) < 3 or not f[0]:
                continue
            gid = _id(f[2])
            if gid is not None:
                members = tuple(m for m in (f[3].split(",") if len(f) > 3 else []) if m)
                groups.append(GroupEntry(f[0], gid, members, lineno))
        return cls(users, groups)

    @classmethod
    def read(cls, root: str | os.PathLike[str] = "/") -> Accounts:
        """Accounts of the system rooted at ``root``: ``<root>/etc/passwd`` and ``group``."""
        texts = []
        for name in ("passwd", "group"):
            path = os.path.join(os.fspath(root), "etc", name)
            try:
                with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                    texts.append(fh.read())
            except FileNotFoundError:
                texts.append("")
        return cls.parse(texts[0], texts[1])

    @classmethod
    def from_pairs(cls, users: Iterable[tuple[str, int]] = (),
                   groups: Iterable[tuple[str, int]] = ()) -> Accounts:
        """Accounts from ``(name, uid)`` and ``(name, gid)`` pairs (primary gid = uid)."""
        return cls([PasswdEntry(n, u, u) for n, u in users], [GroupEntry(n, g) for n, g in groups])

    def user(self, name: str) -> PasswdEntry | None:
        """The first passwd entry named ``name``."""
        found = self._index.get(("user", name))
        return found if isinstance(found, PasswdEntry) else None

    def user_by_uid(self, uid: int) -> PasswdEntry | None:
        """The first passwd entry with ``uid``."""
        found = self._index.get(("uid", uid))
        return found if isinstance(found, PasswdEntry) else None

    def group(self, name: str) -> GroupEntry | None:
        """The first group entry named ``name``."""
        found = self._index.get(("group", name))
        return found if isinstance(found, GroupEntry) else None

    def group_by_gid(self, gid: int) -> GroupEntry | None:
        """The first group entry with ``gid``."""
        found = self._index.get(("gid", gid))
        return found if isinstance(found, GroupEntry) else None

    def uid_of(self, name: str) -> int | None:
        """The uid of user ``name``, or ``None``."""
        u = self.user(name)
        return None if u is None else u.uid

    def gid_of(self, name: str) -> int | None:
        """The gid of GROUP ``name``, or ``None``."""
        g = self.group(name)
        return None if g is None else g.gid

    def owner_uid(self, owner: str) -> int | None:
        """The uid a subuid owner field stands for: a user name, or a decimal uid."""
        uid = self.uid_of(owner)
        if uid is not None:
            return uid
        return _id(owner)

    @property
    def uids(self) -> IDSet:
        """Every uid in passwd."""
        return IDSet(u.uid for u in self.users)

    @property
    def gids(self) -> IDSet:
        """Every gid in group, and every primary gid in passwd."""
        return IDSet([*(g.gid for g in self.groups), *(u.gid for u in self.users)])
