"""systemd-nspawn's ``--private-users=``: one range from container ID 0, for users and
groups alike.

Grammar (``systemd-nspawn(1)``; ``PrivateUsers=`` in ``.nspawn`` files takes the same)::

    value = BASE [ ":" RANGE ] | "identity" | "yes" | "no" | "pick" | "managed"

``BASE[:RANGE]`` maps container IDs ``0 … RANGE-1`` to host IDs ``BASE … BASE+RANGE-1``
(``RANGE`` is 65536 when left out), the same for users and groups. ``identity`` is
``0:65536``. The other words pick the range when the container starts (``yes`` from the
owner of the container's root directory, ``pick`` and ``managed`` from free ranges), or
turn user namespacing off (``no``): they name no map, and are refused with the reason
(``chosen-at-start``, ``no-userns``). A base of 65535 is refused as nspawn refuses it
(``parse_uid``: the 16-bit ``(uid_t)-1``).

The text expresses only some maps: :func:`format_nspawn` raises
:class:`~userns.errors.NotExpressibleError` (reason ``not-expressible``) for any other.

A text may be the value, ``--private-users=VALUE`` or ``PrivateUsers=VALUE``.

>>> parse_nspawn("--private-users=1879048192:65536").uid.to_host(0)
1879048192
>>> format_nspawn(parse_nspawn("identity"))
'--private-users=0:65536'
"""

from __future__ import annotations

from ..errors import NotExpressibleError
from ..ids import ID_LIMIT
from ..maps import IDMap, IDMapPair
from ._text import Token, check_extent, invalid, number, split_token, syntax

__all__ = ["DEFAULT_RANGE", "EXPRESSIBLE", "format_nspawn", "parse_nspawn"]

#: The range nspawn uses when ``--private-users=BASE`` gives none.
DEFAULT_RANGE = 65536

_PREFIXES = ("--private-users=", "PrivateUsers=")
_AT_START = {
    "yes": "'yes' takes the base from the owner of the container's root directory when it "
           "starts",
    "true": "'yes' takes the base from the owner of the container's root directory when it "
            "starts",
    "pick": "'pick' chooses a free range when the container starts",
    "managed": "'managed' asks systemd-nsresourced for a range when the container starts",
}
_OFF = ("no", "false", "0")
#: systemd's ``uid_is_valid`` refuses the 16-bit ``(uid_t)-1`` as well as the 32-bit one.
_UID16_INVALID = 65535
#: What ``--private-users=`` can express, for the refusal of any other map.
EXPRESSIBLE = ("one range from container ID 0, the same for users and groups, at a host "
               "base other than 65535")


def parse_nspawn(text: str, *, path: str | None = None) -> IDMapPair:
    """Read a ``--private-users=`` value into the (identical) uid and gid maps.

    >>> parse_nspawn("PrivateUsers=65536").uid
    IDMap([Extent(0, 65536, 65536)])
    """
    line = text.strip("\n")
    if "\n" in line:
        at = line.index("\n")
        raise syntax("the value is one line", Token("\n", 1, at, line[:at]), path)
    start = next((len(p) for p in _PREFIXES if line.startswith(p)), 0)
    body = line[start:]
    tok = Token(body, 1, start, line)
    if not body:
        raise syntax("the value is empty", tok, path, reason="empty")
    word = body.lower()
    if word in _AT_START:
        raise invalid(f"{_AT_START[word]}: no map can be read from the text; give "
                      "BASE:RANGE", tok, path, "chosen-at-start")
    if word in _OFF:
        raise invalid(f"{body!r} turns user namespacing off: the container shares the host's "
                      "IDs", tok, path, "no-userns")
    if word == "identity":
        return IDMapPair.both(IDMap.single(0, 0, DEFAULT_RANGE))
    parts = split_token(tok, ":")
    if len(parts) > 2:
        raise syntax(f"{body!r} is not 'BASE[:RANGE]'", tok, path)
    base = number(parts[0], "base (first host ID)", path)
    if base == _UID16_INVALID:
        raise invalid("systemd refuses the base 65535 (the 16-bit (uid_t)-1, never a valid "
                      "UID to it); choose another base", parts[0], path, "invalid-id")
    size = number(parts[1], "range", path) if len(parts) == 2 else DEFAULT_RANGE
    if size == 0:
        raise invalid("the range must be at least 1 (nspawn refuses 0)", parts[1], path,
                      "zero-count")
    if base + size > ID_LIMIT - 1:
        raise invalid(f"{base}+{size} runs past the largest ID 4294967294", tok, path, "wrap")
    extent = check_extent(0, base, size, tok, path)
    return IDMapPair.both(IDMap([extent]))


def format_nspawn(pair: IDMapPair) -> str:
    """``--private-users=BASE:RANGE``; :class:`~userns.errors.NotExpressibleError`
    (reason ``not-expressible``) for a map nspawn cannot express: users and groups mapped
    differently (or one of them not at all), more or fewer than one extent, an extent not
    starting at container ID 0, or the base 65535 nspawn refuses.

    >>> format_nspawn(IDMapPair.both(IDMap.single(0, 524288, 65536)))
    '--private-users=524288:65536'
    >>> try:
    ...     format_nspawn(IDMapPair.both(IDMap.single(1, 524288, 65536)))
    ... except NotExpressibleError as err:
    ...     print(err.reason, err.message.split("; ")[1])
    not-expressible this map starts at container ID 1
    """
    if pair.uid != pair.gid:
        why = "the uid and gid maps differ"
    elif len(pair.uid) != 1:
        why = f"this map has {len(pair.uid)} extents"
    elif pair.uid[0].container != 0:
        why = f"this map starts at container ID {pair.uid[0].container}"
    elif pair.uid[0].host == _UID16_INVALID:
        why = "systemd refuses the base 65535"
    else:
        e = pair.uid[0]
        return f"--private-users={e.host}:{e.size}"
    raise NotExpressibleError(f"nspawn's --private-users= expresses {EXPRESSIBLE}; {why}",
                              format_name="nspawn")
