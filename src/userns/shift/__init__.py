"""Chown-shifting volume trees for remapped containers: shift, unshift, audit.

``shift_tree(root, target, source=...)`` re-owns every inode of a tree from one ID map to
another (uids, gids, named ACL entries, v3 capability root uids), keeping setuid/setgid
bits and capabilities, changing hard-linked inodes once, never following a symlink nor
leaving the tree, and resuming exactly after a kill. ``audit_tree`` reports what a tree
holds without changing it.

>>> import tempfile, os
>>> from userns import IDMap, IDMapPair
>>> pair = IDMapPair.both(IDMap.single(0, 100000, 65536))
>>> with tempfile.TemporaryDirectory() as d:
...     os.mkdir(f"{d}/vol"); os.chown(f"{d}/vol", 33, 33)
...     shift_tree(f"{d}/vol", pair, workers=1).changed
...     os.stat(f"{d}/vol").st_uid
...     unshift_tree(f"{d}/vol", pair, workers=1).changed
...     os.stat(f"{d}/vol").st_uid
1
100033
1
33
"""

from __future__ import annotations

from .core import (
    MAX_WORKERS,
    audit_tree,
    default_journal_path,
    rollback_shift,
    shift_tree,
    unshift_tree,
)
from .journal import JournalError
from .report import (
    AuditReport,
    AuditState,
    OutsideLink,
    OutsideLinksError,
    OwnerChange,
    PathError,
    Progress,
    ShiftError,
    ShiftMark,
    ShiftReport,
    UnmappedID,
    UnmappedOwnersError,
)
from .translate import Policy
from .xattrs import XattrFormatError

__all__ = [
    "MAX_WORKERS",
    "AuditReport",
    "AuditState",
    "JournalError",
    "OutsideLink",
    "OutsideLinksError",
    "OwnerChange",
    "PathError",
    "Policy",
    "Progress",
    "ShiftError",
    "ShiftMark",
    "ShiftReport",
    "UnmappedID",
    "UnmappedOwnersError",
    "XattrFormatError",
    "audit_tree",
    "default_journal_path",
    "rollback_shift",
    "shift_tree",
    "unshift_tree",
]
