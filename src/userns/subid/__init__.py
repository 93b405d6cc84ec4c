"""``/etc/subuid`` and ``/etc/subgid``: lossless model, lint, safe edit, shadow-exact allocation.

- :mod:`userns.subid.model`: :class:`SubidFile` keeps every line of a file and reads each
  one as the strict syntax, shadow and Docker read it;
- :mod:`userns.subid.accounts`: :class:`Accounts`, the passwd and group data of the
  system the files belong to (a root directory or texts, never the running host's);
- :mod:`userns.subid.lint`: :func:`lint` a pair of files;
- :mod:`userns.subid.edit`: locked, backed-up, atomic edits in shadow's manner;
- :mod:`userns.subid.allocate`: :func:`allocate` exactly as ``useradd`` does, and what
  ``useradd``/``usermod``/``getsubids`` write or print.

The accounts model and the editor are imported the first time one of their
names is used (PEP 562): a process that reads, allocates and writes in shadow's manner
loads only the model, the allocator and the owner rules.

>>> f = SubidFile.parse("dockremap:231072:65536\\n")
>>> f.ranges_for("dockremap", 999)
[IDRange(231072, 65536)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from .allocate import (
    AllocationError,
    FreeSpace,
    allocate,
    allocate_aligned,
    allocate_many,
    free_space,
    shadow_add_range,
    shadow_find_free_range,
    shadow_have_range,
    shadow_list_owner_ranges,
    shadow_order,
    shadow_remove_range,
    shadow_useradd,
    shadow_userdel,
    shadow_usermod,
)

# Eager although the allocation path does not use it: the submodule ``lint`` would
# replace the function ``lint`` as the package's attribute when first imported.
from .lint import Finding, Severity, lint
from .model import (
    LineKind,
    NumberReading,
    RawRange,
    SubidEntry,
    SubidFile,
    SubidLine,
    SubidParseError,
    docker_parse_int,
    shadow_strtoul,
)
from .owners import UnknownOwnerWarning, check_owner, owner_problem

if TYPE_CHECKING:
    from .accounts import Accounts, GroupEntry, PasswdEntry
    from .edit import (
        LockError,
        accounts_beside,
        add_subid_range,
        edit_subid_file,
        lock_file,
        remove_subid_range,
        write_subid_file,
    )

__all__ = [
    "Accounts",
    "AllocationError",
    "Finding",
    "FreeSpace",
    "GroupEntry",
    "LineKind",
    "LockError",
    "NumberReading",
    "PasswdEntry",
    "RawRange",
    "Severity",
    "SubidEntry",
    "SubidFile",
    "SubidLine",
    "SubidParseError",
    "UnknownOwnerWarning",
    "accounts_beside",
    "add_subid_range",
    "allocate",
    "allocate_aligned",
    "allocate_many",
    "check_owner",
    "docker_parse_int",
    "edit_subid_file",
    "free_space",
    "lint",
    "lock_file",
    "owner_problem",
    "remove_subid_range",
    "shadow_add_range",
    "shadow_find_free_range",
    "shadow_have_range",
    "shadow_list_owner_ranges",
    "shadow_order",
    "shadow_remove_range",
    "shadow_strtoul",
    "shadow_useradd",
    "shadow_userdel",
    "shadow_usermod",
    "write_subid_file",
]

#: The names imported on first use, and the module (relative to this package) of each:
#: reading, allocating and writing in shadow's manner need neither the account files'
#: model nor the locked editor.
_LAZY: dict[str, str] = {
    "Accounts": ".accounts", "GroupEntry": ".accounts", "PasswdEntry": ".accounts",
    "LockError": ".edit", "accounts_beside": ".edit", "add_subid_range": ".edit",
    "edit_subid_file": ".edit", "lock_file": ".edit", "remove_subid_range": ".edit",
    "write_subid_file": ".edit",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__, globals())
