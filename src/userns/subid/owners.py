"""Which owner names may be written into ``/etc/subuid`` and ``/etc/subgid``: one rule.

Every writer of the package calls :func:`check_owner` before it builds a line, so a
name that would inject lines (``"evil\\nroot:0:65536"``), split a field (``"bad:name"``)
or be read back as something else is refused with :class:`~userns.InvalidOwnerError`
and the files are never touched.

The rules, in the order they are checked (``rule`` of the error in brackets):

1. not empty [``empty``]; no ``:`` [``colon``]; no control character (``\\n``, ``\\r``,
   NUL, tab, DEL, ...) [``control-character``]; no white space at all, a space
   included [``whitespace``]; ASCII only [``non-ascii``] — the hard rules, which
   ``badname`` does not relax;
2. no leading ``#`` (a comment look-alike that shadow still reads as an entry), ``+``
   or ``-`` (NIS markers, which shadow skips and Docker reads) [``comment-or-nis``];
3. shorter than ``LOGIN_NAME_MAX`` (256) bytes, shadow's ``is_valid_user_name`` limit,
   which also keeps ``owner:start:count`` far below the 1024 bytes shadow reads in a
   line [``too-long``];
4. all digits: a decimal uid, written as shadow and Docker compare it (``str(uid)``:
   no leading zero, at most 4294967294) [``bad-uid``];
5. otherwise a user name as shadow's ``is_valid_user_name`` (``lib/chkname.c``) takes
   it: not ``.`` or ``..`` [``dot-name``], no ``,`` or ``/`` [``reserved-character``]
   (refused even under ``--badname``), and — unless ``badname=True``, the library's
   ``useradd --badname`` — the portable form ``[A-Za-z0-9_.][A-Za-z0-9_.-]*`` with an
   optional final ``$`` [``not-portable``].

Debian's ``useradd`` is laxer than rule 5 (it also takes ``a@b`` or ``é``, and refuses
names over 32 characters): names it made pass with ``badname=True`` when they obey the
hard rules.

An owner that is well formed but has no passwd entry (by name, or by uid for the
decimal form) is refused with ``reason`` ``unknown-owner`` unless
``allow_unknown_owner=True``; then :class:`UnknownOwnerWarning` is issued.

>>> check_owner("dockremap")
'dockremap'
>>> try:
...     check_owner("evil\\nroot:0:65536")
... except InvalidOwnerError as err:
...     print(err.reason, err.rule)
invalid-owner control-character
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from typing import TYPE_CHECKING

from ..errors import InvalidOwnerError
from ..ids import ID_MAX

if TYPE_CHECKING:  # annotations only: the rules need no account data unless given
    from .accounts import Accounts

__all__ = [
    "LOGIN_NAME_MAX",
    "UnknownOwnerWarning",
    "check_owner",
    "owner_problem",
]

#: glibc's ``sysconf(_SC_LOGIN_NAME_MAX)``: shadow refuses a name of this many bytes or more.
LOGIN_NAME_MAX = 256

#: shadow's portable user name (``is_valid_name`` without ``--badname``).
_PORTABLE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.\-]*\$?\Z")
_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")


class UnknownOwnerWarning(UserWarning):
    """An owner with no passwd entry was written because ``allow_unknown_owner`` was given."""


def _where(owner: str, i: int) -> str:
    return f"{owner[i]!r} at position {i}"


def owner_problem(owner: str, *, badname: bool = False) -> tuple[str, str] | None:  # noqa: C901 (one rule per branch, in the order the refusal names them)
    """``(rule, why)`` when ``owner`` may not be written; ``None`` when it may.

    ``badname`` relaxes only the portable-name rule, as ``useradd --badname`` does.

    >>> owner_problem("alice"), owner_problem("1000")
    (None, None)
    >>> owner_problem("#alice")[0], owner_problem("bad:name")[0]
    ('comment-or-nis', 'colon')
    >>> owner_problem("a@b")[0], owner_problem("a@b", badname=True)
    ('not-portable', None)
    """
    if not isinstance(owner, str):
        return "not-text", f"it is a {type(owner).__name__}, not a str"
    if (_PORTABLE.match(owner) is not None and len(owner) < LOGIN_NAME_MAX
            and owner not in (".", "..") and not owner.isdigit()):
        return None  # the common case, in one regex: a portable name
    if owner == "":
        return "empty", "it is empty: shadow and Docker read a line with no owner differently"
    for i, c in enumerate(owner):
        if c == ":":
            return "colon", (f"it contains {_where(owner, i)}, the field separator: the "
                             "line would split into other fields")
        if c < " " or c == "\x7f" or unicodedata.category(c) in ("Cc", "Cs"):
            return "control-character", (f"it contains the control character "
                                         f"{_where(owner, i)}: a newline or NUL would "
                                         "start or cut a line")
        if c.isspace():
            return "whitespace", (f"it contains white space ({_where(owner, i)}): shadow "
                                  "and Docker trim or split on it differently")
        if not c.isascii():
            return "non-ascii", (f"it contains the non-ASCII character {_where(owner, i)}: "
                                 "the files are read as bytes, and names must be ASCII")
    if owner[0] in "#+-":
        what = ("a comment look-alike that shadow still reads as an entry" if owner[0] == "#"
                else "a NIS marker: shadow skips the line, Docker reads it")
        return "comment-or-nis", f"it starts with {owner[0]!r}: {what}"
    size = len(owner.encode("ascii"))
    if size >= LOGIN_NAME_MAX:
        return "too-long", (f"it is {size} bytes long; shadow takes names shorter than "
                            f"{LOGIN_NAME_MAX} bytes")
    if owner.isdigit():
        if (owner[0] == "0" and owner != "0") or int(owner) > ID_MAX:
            return "bad-uid", (f"a numeric owner must be a uid written as shadow and Docker "
                               f"compare it: decimal, no leading zero, at most {ID_MAX}")
        return None
    if owner in (".", ".."):
        return "dot-name", "'.' and '..' are not user names"
    for i, c in enumerate(owner):
        if c in ",/":
            return "reserved-character", (f"it contains {_where(owner, i)}, which shadow "
                                          "refuses in a user name even with --badname")
    if not badname and _PORTABLE.match(owner) is None:
        last = len(owner) - 1
        bad = next(i for i, c in enumerate(owner)
                   if not (c in _FIRST or (i and c == "-") or (i == last and c == "$")))
        return "not-portable", (f"{_where(owner, bad)} is not in shadow's portable user name "
                                "[A-Za-z0-9_.][A-Za-z0-9_.-]*$? (badname=True or --badname "
                                "accepts it)")
    return None


def check_owner(
    owner: str,
    *,
    accounts: Accounts | None = None,
    allow_unknown_owner: bool = False,
    badname: bool = False,
) -> str:
    """``owner`` when it may be written into a subid file; raises otherwise.

    Raises :class:`~userns.InvalidOwnerError` (``reason`` ``invalid-owner``) when a
    rule of this module's docstring is broken. With ``accounts`` (the passwd data of
    the system the file belongs to), an owner that names no user (or no uid, for the
    decimal form) raises with ``reason`` ``unknown-owner``, unless
    ``allow_unknown_owner``: then an :class:`UnknownOwnerWarning` is issued instead.

    >>> from userns.subid import Accounts
    >>> acc = Accounts.from_pairs([("seb", 1000)])
    >>> check_owner("seb", accounts=acc), check_owner("1000", accounts=acc)
    ('seb', '1000')
    >>> check_owner("ghost", accounts=acc)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    userns.errors.InvalidOwnerError: owner 'ghost' refused: no user of that name ... [unknown-owner]
    """
    problem = owner_problem(owner, badname=badname)
    if problem is not None:
        rule, why = problem
        raise InvalidOwnerError(f"owner {owner!r} refused: {why}", owner=owner, rule=rule)
    if accounts is not None:
        known = (accounts.user_by_uid(int(owner)) if owner.isdigit()
                 else accounts.user(owner)) is not None
        if not known:
            if not allow_unknown_owner:
                raise InvalidOwnerError(
                    f"owner {owner!r} refused: no user of that name or uid in passwd "
                    "(allow_unknown_owner=True or --allow-unknown-owner writes it anyway)",
                    reason="unknown-owner", owner=owner, rule="unknown-owner")
            warnings.warn(UnknownOwnerWarning(
                f"owner {owner!r} has no passwd entry: written because unknown owners "
                "were allowed"), stacklevel=2)
    return owner
