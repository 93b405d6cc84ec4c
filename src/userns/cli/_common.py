"""What every command of the ``userns`` CLI shares: output, inputs, options, exit codes.

A command module (``explain``, ``maps``, ``subid``, ``shift``, ...) exposes
``register(sub)``, which adds its sub-parsers with ``set_defaults(func=...)``; a command
function takes ``(args, out)`` and returns an exit status, one of the constants below.
The commands only call the library and render what it decided.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import CommandError, UsageError, UsernsError
from ..ids import ID_MAX
from ..severity import Severity

if TYPE_CHECKING:
    from ..maps import IDMap, IDMapPair

# The format registry (and with it attrs and the core's value classes) is imported where
# a map is read or an option names a format: ``import userns.cli`` stays light, so that a
# ``userns`` process loads them during its start-up proper (``userns.cli._StartUp``).

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LEVELS",
    "TEXT_CAP",
    "CommandError",
    "Output",
    "System",
    "UsageError",
    "add_json",
    "add_map_options",
    "add_system_options",
    "capped",
    "error_document",
    "finding_dict",
    "format_name",
    "load_pair",
    "parse_id",
    "parse_positive",
    "plural",
    "prefix_message",
    "read_file",
    "read_text",
    "show",
    "triples",
]

#: The command did what was asked, and found nothing at or above ``--fail-on``.
EXIT_OK = 0
#: An error, or findings at or above ``--fail-on``, or a state that is not the one asked for.
EXIT_FAILURE = 1
#: The command line itself is wrong (argparse's own status).
EXIT_USAGE = 2
#: Interrupted by the user (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

#: How many items a text list shows before "… and N more" (JSON is never capped).
TEXT_CAP = 20


#: The seed example ``explain --example`` runs on: Docker's default remap user.
EXAMPLE_SUBUID = "dockremap:231072:65536\n"
EXAMPLE_SUBGID = "dockremap:231072:65536\n"
EXAMPLE_PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    "dockremap:x:999:999::/home/dockremap:/bin/false\n"
)
EXAMPLE_GROUP = "root:x:0:\nnogroup:x:65534:\ndockremap:x:999:\n"


class Output:
    """Where a command writes: plain text lines, or one JSON document at the end."""

    def __init__(self, stream: TextIO, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json

    def line(self, text: str = "") -> None:
        if not self.as_json:
            self.stream.write(text + "\n")

    def json(self, data: Any) -> None:
        if self.as_json:
            self.stream.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def capped(items: Sequence[Any], limit: int = TEXT_CAP) -> tuple[Sequence[Any], str | None]:
    """The first ``limit`` items and the line that says how many were left out, if any.

    >>> capped([1, 2, 3], 2)
    ([1, 2], '… and 1 more')
    >>> capped([1], 2)
    ([1], None)
    """
    if len(items) <= limit:
        return items, None
    return items[:limit], f"… and {len(items) - limit} more"


# -- reading inputs ---------------------------------------------------------------------


def read_text(value: str) -> tuple[str, str | None]:
    """``@PATH`` or ``-`` (stdin) or the text itself; the text and its path, if any."""
    if value == "-":
        if sys.stdin is None or sys.stdin.closed:
            raise CommandError("standard input is closed: give the map as text or @FILE",
                               reason="io")
        try:
            return sys.stdin.read(), "<stdin>"
        except OSError as err:
            raise CommandError(f"cannot read standard input: {err.strerror}",
                               reason="io") from err
    if value.startswith("@"):
        path = value[1:]
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                return f.read(), path
        except OSError as err:
            raise CommandError(f"cannot read {path}: {err.strerror}", reason="io") from err
    return value, None


def load_pair(value: str, fmt: str | None, side: str = "both") -> IDMapPair:
    from ..formats.registry import detect_format, get_format

    text, path = read_text(value)
    name = fmt or detect_format(text)
    return get_format(name).parse(text, path=path, side=side)  # type: ignore[arg-type]


def read_file(path: str, *, required: bool) -> str:
    """The file's text; a missing file is empty unless it was named explicitly."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError as err:
        if required:
            raise CommandError(f"cannot read {path}: no such file", reason="io") from err
        return ""
    except OSError as err:
        raise CommandError(f"cannot read {path}: {err.strerror}", reason="io") from err


class System:
    """The subuid/subgid/passwd/group/login.defs a command works on."""

    def __init__(self, args: argparse.Namespace) -> None:
        root = getattr(args, "root", None) or "/"
        if getattr(args, "root", None) and not os.path.isdir(os.path.join(root, "etc")):
            raise CommandError(f"--root {root}: there is no {os.path.join(root, 'etc')} "
                               "directory", reason="io")
        etc = os.path.join(root, "etc")
        self.example = bool(getattr(args, "example", False))
        named = [o for o in ("root", "subuid", "subgid", "passwd", "group")
                 if getattr(args, o, None)]
        if self.example and named:
            raise UsageError(f"--example uses its own files; it cannot be combined with "
                             f"--{named[0]}")
        self.explicit = {o for o in named if o != "root"}
        self.subuid_path = getattr(args, "subuid", None) or os.path.join(etc, "subuid")
        self.subgid_path = getattr(args, "subgid", None) or os.path.join(etc, "subgid")
        self.passwd_path = getattr(args, "passwd", None) or os.path.join(etc, "passwd")
        self.group_path = getattr(args, "group", None) or os.path.join(etc, "group")
        self.login_defs_path = os.path.join(etc, "login.defs")
        if self.example:
            self.subuid_path, self.subgid_path = "subuid (example)", "subgid (example)"

    def subid(self, kind: str) -> Any:
        from ..subid import SubidFile

        if self.example:
            text = EXAMPLE_SUBUID if kind == "uid" else EXAMPLE_SUBGID
            return SubidFile.parse(text, path=f"sub{kind}")
        path = self.subuid_path if kind == "uid" else self.subgid_path
        return SubidFile.parse(read_file(path, required=f"sub{kind}" in self.explicit),
                               path=path)

    def accounts(self) -> Any:
        from ..subid import Accounts

        if self.example:
            return Accounts.parse(EXAMPLE_PASSWD, EXAMPLE_GROUP)
        return Accounts.parse(read_file(self.passwd_path, required="passwd" in self.explicit),
                              read_file(self.group_path, required="group" in self.explicit))

    def login_defs(self) -> Any:
        from ..logindefs import LoginDefs

        if self.example:
            return LoginDefs()
        return LoginDefs.parse(read_file(self.login_defs_path, required=False))


def add_system_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("files (default: the running system's)")
    g.add_argument("--root", metavar="DIR", help="read DIR/etc/{subuid,subgid,passwd,group}")
    g.add_argument("--subuid", metavar="FILE", help="the subuid file")
    g.add_argument("--subgid", metavar="FILE", help="the subgid file")
    g.add_argument("--passwd", metavar="FILE", help="the passwd file")
    g.add_argument("--group", metavar="FILE", help="the group file")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document")


def triples(m: IDMap | None) -> list[list[int]] | None:
    return None if m is None else m.to_triples()


# -- explain ----------------------------------------------------------------------------


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def show(value: int | None) -> str:
    return "unmapped" if value is None else str(value)


def finding_dict(f: Any) -> dict[str, Any]:
    return {"reason": f.reason, "severity": str(f.severity), "message": f.message,
            "path": f.path, "line": f.lineno, "owner": f.owner}


# -- translate / convert -----------------------------------------------------------------


DIGITS = re.compile(r"[0-9]+\Z")


def parse_id(text: str) -> int:
    if not DIGITS.match(text):
        raise argparse.ArgumentTypeError(f"not a base-10 ID: {text!r}")
    if len(text.lstrip("0")) > 10 or int(text) > ID_MAX:
        what = "(uid_t)-1, never an ID" if text.lstrip("0") == "4294967295" else "too large"
        raise argparse.ArgumentTypeError(f"{text} is {what}: IDs are 0…{ID_MAX}")
    return int(text)


def parse_positive(text: str) -> int:
    if not DIGITS.match(text):
        raise argparse.ArgumentTypeError(f"not a base-10 number: {text!r}")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def add_map_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    from ..formats.registry import FORMATS

    p.add_argument("--map", "-m", required=required, metavar="MAP",
                   help="the map: its text, @FILE, or - for stdin")
    p.add_argument("--format", "-f", type=format_name, metavar="FORMAT",
                   help=f"the map's format (default: guessed): {', '.join(sorted(FORMATS))}"
                   " (or an alias, any case)")


def format_name(text: str) -> str:
    """An argparse type: a format's name or alias (any case), as its canonical name."""
    from ..formats.registry import get_format

    try:
        return get_format(text).name
    except UsernsError as err:
        raise argparse.ArgumentTypeError(err.message) from None


#: Finding severities from the lowest, as ``--fail-on`` names them (:class:`Severity`).
LEVELS = tuple(str(s) for s in Severity)


def error_document(err: UsernsError) -> dict[str, Any]:
    """The ``--json`` document of an error: ``{"ok": false, "error": {...}}``."""
    loc = err.location
    # A parse error's path is its location's; an I/O error (MountError, KernelError, ...)
    # names the path it failed on as ``path`` or, as an OSError, ``filename``.
    path = loc.path if loc else None
    if path is None:
        path = getattr(err, "path", None) or getattr(err, "filename", None)
    return {"ok": False, "error": {
        "reason": err.reason, "message": err.message,
        "path": None if path is None else str(path), "line": loc.line if loc else None,
        "column": loc.column if loc else None}}


def prefix_message(message: str) -> str:
    """``userns: error: MESSAGE`` unless the message names the program already."""
    return message if message.startswith("userns:") else f"userns: error: {message}"
