"""Every userns exception pickles and copies with its message, reason and attributes."""

from __future__ import annotations

import copy
import importlib
import pickle
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import userns
from userns.errors import Location, ParseError, UnmappedIDError, UsernsError


def _all_error_classes() -> list[type[UsernsError]]:
    for info in pkgutil.walk_packages(userns.__path__, "userns."):
        if info.name != "userns.__main__":
            importlib.import_module(info.name)
    found: list[type[UsernsError]] = []
    todo: list[type[UsernsError]] = [UsernsError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _unmapped_owners_report(tmp: Path) -> object:
    """A real ShiftReport, from a shift refused for an owner outside the map."""
    import os

    from userns import IDMap, IDMapPair
    from userns.shift import UnmappedOwnersError, shift_tree

    tree = tmp / "tree"
    tree.mkdir()
    (tree / "f").write_text("x")
    os.chown(tree / "f", 70000, 70000) if os.geteuid() == 0 else None
    pair = IDMapPair.both(IDMap.single(0, 231072, 65536))
    try:
        shift_tree(str(tree), pair, policy="error")  # refused before any change
    except UnmappedOwnersError as err:
        return err.report
    pytest.skip("needs root to give a file an owner outside the map")


def _factories(tmp: Path) -> dict[str, Callable[[Any], UsernsError]]:
    located = ParseError("bad field", reason="syntax",
                         location=Location(line=2, column=3, end_column=5, text="0 x 1",
                                           path="uid_map"))
    return {
        "UnmappedIDError": lambda cls: cls(7, "to_container"),
        "SubidParseError": lambda cls: cls([located, located]),
        "ChildFailure": lambda cls: cls("exec", 2, "nosuchcommand"),
        "UnmappedOwnersError": lambda cls: cls(_unmapped_owners_report(tmp)),
        "OutsideLinksError": lambda cls: cls(_unmapped_owners_report(tmp)),
        "ShiftError": lambda cls: cls("stopped", _unmapped_owners_report(tmp),
                                      reason="stopped"),
    }


def _make(cls: type[UsernsError], tmp: Path) -> UsernsError:
    factory = _factories(tmp).get(cls.__name__)
    if factory is not None:
        return factory(cls)
    try:
        return cls("a message", reason="some-reason",
                   location=Location(line=1, column=2, text="abc", path="f"))
    except TypeError:
        return cls("a message", reason="some-reason")


def _norm(value: object) -> object:
    """Exceptions compare by identity: compare them by type and rendered text instead."""
    if isinstance(value, BaseException):
        return (type(value), str(value))
    if isinstance(value, (tuple, list)):
        return [_norm(v) for v in value]
    return value


def _same(a: UsernsError, b: UsernsError) -> None:
    assert type(a) is type(b)
    assert (str(a), a.args, a.reason, a.message) == (str(b), b.args, b.reason, b.message)
    assert a.location == b.location
    assert a.render() == b.render()
    assert set(vars(a)) == set(vars(b))
    for name in vars(a):
        assert _norm(getattr(a, name)) == _norm(getattr(b, name)), name
    if isinstance(a, OSError) and isinstance(b, OSError):
        assert (a.errno, a.strerror, a.filename) == (b.errno, b.strerror, b.filename)


CLASSES = _all_error_classes()


def test_the_walk_finds_the_known_errors() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"UnmappedIDError", "ShiftError", "UnmappedOwnersError", "MapWriteError",
            "SubidParseError", "CommandError"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_pickle_and_copy_round_trip(cls: type[UsernsError], tmp_path: Path) -> None:
    err = _make(cls, tmp_path)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        _same(err, pickle.loads(pickle.dumps(err, protocol)))
    _same(err, copy.copy(err))
    _same(err, copy.deepcopy(err))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_error_says_when_it_is_raised(cls: type[UsernsError]) -> None:
    doc = cls.__doc__ or ""
    assert len(doc.split()) >= 8, f"{cls.__name__} needs a docstring saying when it is raised"


def test_unmapped_id_error_keeps_its_fields() -> None:
    err = pickle.loads(pickle.dumps(UnmappedIDError(5, "to_host")))
    assert (err.id, err.direction, err.reason) == (5, "to_host", "unmapped")
