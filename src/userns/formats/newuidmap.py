"""``newuidmap`` / ``newgidmap`` command lines (shadow-utils).

Grammar: ``[program target] (container host count)*``. ``program`` is ``newuidmap`` or
``newgidmap`` (or a path ending in one); ``target`` the PID (or ``fd:N`` in shadow 4.14+)
whose namespace gets the map. A text without the program is just the triples. Tokens
are separated by whitespace; there is no shell quoting.

shadow reads each number with ``strtoul(…, 0)``, so ``010`` is octal 8 and ``0x10`` is
16 (checked on this machine: ``newuidmap PID 010 0 1`` installs ``8 0 1``). userns
refuses a leading zero or ``0x`` (reason ``ambiguous-number``) rather than guess. The
kernel rules apply to each triple (reasons ``invalid-id``, ``zero-count``, ``wrap``) and
between triples (``overlap-container``, ``overlap-host``); whether the caller is
*allowed* the ranges (``/etc/subuid``) is another module's question.

>>> parse_newuidmap("newuidmap 4242 0 100000 65536")
IDMap([Extent(0, 100000, 65536)])
>>> format_newuidmap(IDMap.single(0, 100000, 65536), target=4242)
'newuidmap 4242 0 100000 65536'
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..maps import IDMap
from ._text import Row, Token, build_map, check_extent, number, syntax
from ._text import tokens as _tokens

__all__ = ["NewIDMapCommand", "format_newuidmap", "parse_newuidmap", "parse_newuidmap_command"]

_PROGRAMS = ("newuidmap", "newgidmap")


@attrs.frozen
class NewIDMapCommand:
    """A parsed command line: ``program`` and ``target`` are ``None`` when absent.

    >>> parse_newuidmap_command("newgidmap 77 0 1000 1").kind
    'gid'
    """

    program: str | None
    target: str | None
    idmap: IDMap

    @property
    def kind(self) -> str | None:
        """``"uid"`` for newuidmap, ``"gid"`` for newgidmap, ``None`` without a program."""
        if self.program is None:
            return None
        return "uid" if self.program.rsplit("/", 1)[-1] == "newuidmap" else "gid"


def _join(argv: Sequence[str]) -> str:
    for arg in argv:
        if not arg or any(ch.isspace() for ch in arg):
            raise ValueError(f"an argument holds whitespace or is empty: {arg!r}")
    return " ".join(argv)


def parse_newuidmap_command(text: str | Sequence[str], *,
                            path: str | None = None) -> NewIDMapCommand:
    """Read a ``newuidmap``/``newgidmap`` command line (a string, or an argv list)."""
    line = text if isinstance(text, str) else _join(text)
    toks: list[Token] = []
    for lineno, part in enumerate(line.split("\n"), 1):
        toks.extend(_tokens(part, line=lineno))
    program = target = None
    if toks and toks[0].text.rsplit("/", 1)[-1] in _PROGRAMS:
        program = toks[0].text
        if len(toks) < 2:
            raise syntax(f"{program} needs the target PID next", toks[0], path)
        target_tok = toks[1]
        pid = target_tok.text[3:] if target_tok.text.startswith("fd:") else target_tok.text
        if not (pid.isascii() and pid.isdigit()):
            raise syntax(f"the target must be a PID or fd:N, found {target_tok.text!r}",
                         target_tok, path, reason="bad-target")
        target = target_tok.text
        toks = toks[2:]
    if len(toks) % 3:
        spot = toks[-(len(toks) % 3)]
        raise syntax(f"{len(toks)} numbers: the ranges come in triples "
                     "'container host count'", spot, path, reason="incomplete-triple")
    rows: list[Row] = []
    for i in range(0, len(toks), 3):
        c_tok, h_tok, s_tok = toks[i:i + 3]
        c, h, s = (number(t, name, path, style="strict", tool="newuidmap")
                   for t, name in zip(toks[i:i + 3], ("container ID", "host ID", "count")))
        whole = (Token(c_tok.line_text[c_tok.start:s_tok.end], c_tok.line, c_tok.start,
                       c_tok.line_text) if c_tok.line == s_tok.line else c_tok)
        rows.append(Row(check_extent(c, h, s, whole, path, (c_tok, h_tok, s_tok)), whole))
    return NewIDMapCommand(program, target, build_map(rows, path))


def parse_newuidmap(text: str | Sequence[str], *, path: str | None = None) -> IDMap:
    """The map a ``newuidmap``/``newgidmap`` command line asks for.

    >>> parse_newuidmap(["newuidmap", "4242", "0", "1000", "1", "1", "100000", "65536"])
    IDMap([Extent(0, 1000, 1), Extent(1, 100000, 65536)])
    """
    return parse_newuidmap_command(text, path=path).idmap


def format_newuidmap(idmap: IDMap, *, target: int | str | None = None,
                     program: str = "newuidmap") -> str:
    """The triples, after ``program target`` when a ``target`` is given.

    >>> format_newuidmap(IDMap.single(0, 1000, 1))
    '0 1000 1'
    """
    triples = " ".join(f"{e.container} {e.host} {e.size}" for e in idmap)
    if target is None:
        return triples
    return f"{program} {target} {triples}".rstrip()
