"""Lint a pair of subid files: syntax, overlaps, account collisions, short owners, Docker misreads.

Every :class:`Finding` has a stable ``reason`` code, a :class:`Severity`, the file and
line, and a message that says what the tools will do. Rules (reason codes):

=========================  ==========  ====================================================
``overlap``                error       ranges of different owners share IDs (half-open:
                                       touching is fine; one inside another counts)
``self-overlap``           warning     one owner's entries share IDs (Docker concatenates
                                       both: its map would map a host ID twice)
``own-id-in-range``        warning     the owner's own uid (subgid: its gid) is inside its
                                       subordinate range
``covers-account``         warning     the range covers the ID of an account in passwd/group
``covers-root``            security    the range covers host ID 0: container IDs map onto
                                       host root
``below-sub-min``          warning     the range starts below SUB_UID_MIN (the system range:
                                       65534 nobody, system users)
``too-few-ids``            warning     the owner has fewer than 65536 IDs in total: container
                                       IDs up to 65535 (nobody) have no host ID, image pulls
                                       fail with ``lchown … EINVAL``
``unknown-owner``          info        no passwd entry (or group, for subgid) for the owner
``missing-pair``           info        an owner in one file is absent from the other
``docker-root-misread``    security    Docker reads the start as 0 (a number it cannot
                                       parse): container root would be HOST root
``docker-misread``         error       Docker and shadow read different numbers (octal,
                                       signs, overflow) or only one of them reads the line
``<syntax reason>``        error       a strict-syntax problem (``hex-number``, ``zero-count``,
                                       ``field-count``, …); ``comment-read-as-entry`` and
                                       ``nis-line`` are warnings
=========================  ==========  ====================================================

>>> uid = SubidFile.parse("alice:100000:65536\\nbob:150000:65536\\n", path="subuid")
>>> [(f.lineno, f.reason) for f in lint(uid)]
[(1, 'overlap'), (2, 'overlap')]
>>> print(lint(uid)[1].message.replace(": ", ":\\n"))
bob's range [150000, 215536) meets 1 range of other owners:
overlaps alice's [100000, 165536) (line 1)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from ..errors import Location
from ..ids import ID_MAX
from ..logindefs import LoginDefs, SubidLimits
from ..severity import Severity
from .model import SubidEntry, SubidFile, SubidLine

if TYPE_CHECKING:  # annotations only
    from .accounts import Accounts

__all__ = ["Finding", "Severity", "lint"]

#: The IDs a container with a full 16-bit range uses: 0 … 65535 (65534 is nobody).
FULL_RANGE = 65536

#: How far back the overlap sweep looks for example partners (counts are always exact).
_EXAMPLE_SCAN = 64
_WARNING_SYNTAX = frozenset({"comment-read-as-entry", "nis-line", "carriage-return"})


@attrs.frozen
class Finding:
    """One lint finding: ``reason`` code, ``severity``, where, and what it means.

    ``location`` carries the line text and the column range for a caret;
    ``owner`` is the entry's owner when the finding is about an entry.
    """

    reason: str
    severity: Severity
    message: str
    path: str | None = None
    lineno: int | None = None
    owner: str | None = None
    location: Location | None = attrs.field(default=None, eq=False, repr=False)

    def __str__(self) -> str:
        where = ":".join(str(x) for x in (self.path or "<input>", self.lineno) if x is not None)
        return f"{where}: {self.severity}: {self.message} [{self.reason}]"

    def render(self) -> str:
        """The finding and, when known, the line with a caret under the offending text."""
        if self.location is None or self.location.text is None:
            return str(self)
        lines = self.location.render().splitlines()[1:]
        return "\n".join([str(self), *lines])


def _finding(
    reason: str, severity: Severity, message: str, file: SubidFile,
    line: SubidLine | None = None, owner: str | None = None,
    span: tuple[int, int] | None = None,
) -> Finding:
    loc = None
    if line is not None:
        a, b = span if span is not None else (0, len(line.text))
        loc = Location(line=line.lineno, column=a + 1, end_column=b + 1, text=line.text,
                       path=file.path)
    return Finding(reason, severity, message, file.path,
                   None if line is None else line.lineno, owner, loc)


def _syntax(file: SubidFile) -> list[Finding]:
    out = []
    for line in file.lines:
        for p in line.problems:
            sev = Severity.WARNING if p.reason in _WARNING_SYNTAX else Severity.ERROR
            loc = p.location
            out.append(Finding(p.reason, sev, p.message, file.path, line.lineno,
                               None if line.entry is None else line.entry.owner, loc))
    return out


def _identity(owner: str, accounts: Accounts | None) -> str:
    """Group a name and its decimal uid as the same owner."""
    if accounts is not None:
        uid = accounts.owner_uid(owner)
        if uid is not None:
            return f"#{uid}"
    return owner


def _relation(e: SubidEntry, other: SubidEntry) -> str:
    if e.range in other.range:
        return "lies inside"
    if other.range in e.range:
        return "contains"
    return "overlaps"


def _overlaps(file: SubidFile, accounts: Accounts | None) -> list[Finding]:
    """One finding per entry that meets other entries: how many, and up to 3 examples.

    Counts come from bisection over the sorted starts and stops (O(log n) per entry);
    examples from a bounded scan of the entries that start before this one ends, so a
    file of many overlapping lines costs O(n log n), not O(n²).
    """
    out: list[Finding] = []
    entries = sorted(file.entries, key=lambda e: (e.start, e.lineno))
    if len(entries) < 2:
        return out
    lines = {line.lineno: line for line in file.lines}
    ident = {e.lineno: _identity(e.owner, accounts) for e in entries}
    starts = [e.start for e in entries]
    stops = sorted(e.stop for e in entries)
    groups: dict[str, tuple[list[int], list[int]]] = {}
    for e in entries:
        g = groups.setdefault(ident[e.lineno], ([], []))
        g[0].append(e.start)
        g[1].append(e.stop)
    for g in groups.values():
        g[1].sort()

    def meeting(st: list[int], sp: list[int], e: SubidEntry) -> int:
        # Entries starting before e ends, minus those ending at or before e starts.
        return bisect_left(st, e.stop) - bisect_right(sp, e.start) - 1

    for pos, e in enumerate(entries):
        g = groups[ident[e.lineno]]
        same = meeting(g[0], g[1], e)
        other = meeting(starts, stops, e) - same
        if not (same or other):
            continue
        want = {"other": min(other, 3), "same": min(same, 1)}
        found: dict[str, list[SubidEntry]] = {"other": [], "same": []}
        top = bisect_left(starts, e.stop)
        for j in range(top - 1, max(top - 1 - _EXAMPLE_SCAN, -1), -1):
            o = entries[j]
            if j == pos or o.stop <= e.start:
                continue
            kind = "same" if ident[o.lineno] == ident[e.lineno] else "other"
            if len(found[kind]) < want[kind]:
                found[kind].append(o)
            if all(len(found[k]) >= want[k] for k in want):
                break
        if other:
            shown = "; ".join(f"{_relation(e, o)} {o.owner}'s {o.range} (line {o.lineno})"
                              for o in sorted(found["other"], key=lambda o: o.lineno))
            if shown and other > len(found["other"]):
                shown += f"; … and {other - len(found['other'])} more"
            msg = (f"{e.owner}'s range {e.range} meets {other} range"
                   f"{'s' if other != 1 else ''} of other owners" + (f": {shown}" if shown
                                                                     else ""))
            out.append(_finding("overlap", Severity.ERROR, msg, file, lines[e.lineno],
                                e.owner))
        if same:
            shown = "; ".join(f"{_relation(e, o)} {o.range} (line {o.lineno})"
                              for o in found["same"])
            if shown and same > len(found["same"]):
                shown += f"; … and {same - len(found['same'])} more"
            msg = (f"{e.owner}'s range {e.range} meets {same} other entr"
                   f"{'ies' if same != 1 else 'y'} of the same owner"
                   + (f" ({shown})" if shown else "")
                   + "; Docker concatenates them and its map would use host IDs twice")
            out.append(_finding("self-overlap", Severity.WARNING, msg, file, lines[e.lineno],
                                e.owner))
    return out


def _docker(file: SubidFile) -> list[Finding]:
    out = []
    for line in file.lines:
        d, s = line.docker, line.shadow
        if d is None:
            continue
        if line.kind.value in ("blank", "comment") and s is None:
            continue  # Docker reads a plain comment as an entry of owner "# ..."; harmless
        parts = line.text.strip().split(":")
        start_text = parts[1].strip() if len(parts) > 1 else ""
        literal_zero = start_text.isdigit() and int(start_text) == 0
        if d.start == 0 and d.count > 0 and not literal_zero:
            shown = f"shadow reads {s.start}" if s is not None else "shadow skips the line"
            msg = (f"Docker reads the start of {d.owner!r} as 0 ({start_text!r} is not a "
                   f"base-10 number to it; {shown}): with userns-remap on Docker 28 or "
                   "later this owner's container root would be HOST root (Docker 20.10 to "
                   "27.x refuse to start on the remap user's line instead)")
            out.append(_finding("docker-root-misread", Severity.SECURITY, msg, file, line,
                                d.owner))
            continue
        if s is None:
            if line.kind.value in ("nis",):
                continue  # reported as nis-line
            msg = (f"Docker reads this line as {d.owner}:{d.start}:{d.count} but shadow "
                   "(newuidmap, useradd) skips it: the two disagree on what "
                   f"{d.owner!r} owns")
            out.append(_finding("docker-misread", Severity.ERROR, msg, file, line, d.owner))
        elif (d.owner, d.start, d.count) != (s.owner, s.start, s.count):
            msg = (f"Docker reads {d.owner}:{d.start}:{d.count}, shadow reads "
                   f"{s.owner}:{s.start}:{s.count}")
            out.append(_finding("docker-misread", Severity.ERROR, msg, file, line, d.owner))
    return out


def _account_checks(
    file: SubidFile, accounts: Accounts, kind: str, limits: SubidLimits
) -> list[Finding]:
    out: list[Finding] = []
    lines = {line.lineno: line for line in file.lines}
    if kind == "uid":
        taken = sorted({u.uid: u.name for u in accounts.users}.items())
    else:
        taken = sorted({g.gid: g.name for g in accounts.groups}.items())
    ids = [i for i, _ in taken]
    for e in file.entries:
        line = lines[e.lineno]
        # The owner's own ID.
        own: int | None = None
        if kind == "uid":
            own = accounts.owner_uid(e.owner)
        else:
            g = accounts.group(e.owner)
            u = accounts.user(e.owner)
            own = g.gid if g is not None else (u.gid if u is not None else None)
            if own is None and e.owner.isascii() and e.owner.isdigit():
                own = int(e.owner)
        if own is not None and own in e.range:
            out.append(_finding(
                "own-id-in-range", Severity.WARNING,
                f"{e.owner}'s own {kind} {own} is inside its subordinate range {e.range}",
                file, line, e.owner))
        # Accounts inside the range (bisect: O(log n) per entry).
        i = bisect_left(ids, e.start)
        hit: list[tuple[int, str]] = []
        while i < len(ids) and ids[i] < e.stop and len(hit) < 6:
            hit.append(taken[i])
            i += 1
        hit = [(n, name) for n, name in hit if n != own]
        if hit:
            names = ", ".join(f"{name} ({n})" for n, name in hit[:5])
            out.append(_finding(
                "covers-account", Severity.WARNING,
                f"{e.owner}'s range {e.range} covers the {kind} of {names}: files of "
                "those accounts are owned by container IDs", file, line, e.owner))
        # Owner known?
        known = (accounts.owner_uid(e.owner) is not None and not (
            e.owner.isascii() and e.owner.isdigit()
            and accounts.user_by_uid(int(e.owner)) is None)) if kind == "uid" else (
            accounts.user(e.owner) is not None or accounts.group(e.owner) is not None
            or (e.owner.isascii() and e.owner.isdigit() and int(e.owner) <= ID_MAX and (
                accounts.group_by_gid(int(e.owner)) is not None
                or accounts.user_by_uid(int(e.owner)) is not None)))
        if not known:
            out.append(_finding(
                "unknown-owner", Severity.INFO,
                f"owner {e.owner!r} has no {'passwd' if kind == 'uid' else 'passwd or group'} "
                "entry (allowed; its ranges still count as taken)", file, line, e.owner))
    return out


def _root_and_totals(
    file: SubidFile, accounts: Accounts | None, kind: str, limits: SubidLimits
) -> list[Finding]:
    out: list[Finding] = []
    lines = {line.lineno: line for line in file.lines}
    totals: dict[str, int] = {}
    first_line: dict[str, SubidEntry] = {}
    for e in file.entries:
        if e.start < limits.min:
            extra = " including 65534 (nobody)" if 65534 in e.range else ""
            out.append(_finding(
                "below-sub-min", Severity.WARNING,
                f"{e.owner}'s range {e.range} starts below SUB_{kind.upper()}_MIN "
                f"{limits.min}, in the system range{extra}", file, lines[e.lineno], e.owner))
        if 0 in e.range:
            out.append(_finding(
                "covers-root", Severity.SECURITY,
                f"{e.owner}'s range {e.range} covers host ID 0: a container ID maps onto "
                "host root", file, lines[e.lineno], e.owner))
        key = _identity(e.owner, accounts)
        totals[key] = totals.get(key, 0) + e.count
        first_line.setdefault(key, e)
    for key, total in totals.items():
        if total < FULL_RANGE:
            e = first_line[key]
            out.append(_finding(
                "too-few-ids", Severity.WARNING,
                f"{e.owner} has {total} subordinate IDs, fewer than {FULL_RANGE}: container "
                f"IDs {total}…65535 (65534 is nobody) have no host ID, so image layers with "
                "such owners fail to unpack (lchown: invalid argument)",
                file, lines[e.lineno], e.owner))
    return out


def _pair(uid: SubidFile, gid: SubidFile, accounts: Accounts | None) -> list[Finding]:
    # An owner written as a name in one file and as its uid in the other is one owner:
    # Docker, Podman and newgidmap look up both files by the USER's name or uid.
    out = []
    for a, b, other in ((uid, gid, "subgid"), (gid, uid, "subuid")):
        present = {_identity(o, accounts) for o in b.owners}
        missing = {o for o in a.owners if _identity(o, accounts) not in present}
        lines = {line.lineno: line for line in a.lines}
        for e in a.entries:
            if e.owner in missing:
                missing.discard(e.owner)
                out.append(_finding(
                    "missing-pair", Severity.INFO,
                    f"{e.owner} has ranges here but none in {other}", a, lines[e.lineno],
                    e.owner))
    return out


def _sorted(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.path or "", f.lineno or 0, -f.severity, f.reason))


def lint(
    subuid: SubidFile,
    subgid: SubidFile | None = None,
    *,
    accounts: Accounts | None = None,
    defs: LoginDefs | None = None,
) -> list[Finding]:
    """Every finding for ``subuid`` (and ``subgid``), sorted by file, line, severity.

    ``accounts`` (passwd and group of the system the files belong to) turns on the
    owner and account checks; ``defs`` gives SUB_UID_MIN/SUB_GID_MIN (shadow's
    defaults otherwise). O(n log n) in the number of lines, plus the overlaps found.

    >>> uid = SubidFile.parse("alice:0x186a0:65536\\n", path="subuid")
    >>> [(f.reason, str(f.severity)) for f in lint(uid)]
    [('docker-root-misread', 'security'), ('hex-number', 'error')]
    """
    defs = defs or LoginDefs()
    out: list[Finding] = []
    for file, kind in ((subuid, "uid"), (subgid, "gid")):
        if file is None:
            continue
        out += _syntax(file)
        out += _overlaps(file, accounts)
        out += _docker(file)
        out += _root_and_totals(file, accounts if kind == "uid" else None, kind,
                                defs.subid_limits(kind))
        if accounts is not None:
            out += _account_checks(file, accounts, kind, defs.subid_limits(kind))
    if subgid is not None:
        out += _pair(subuid, subgid, accounts)
    return _sorted(out)
