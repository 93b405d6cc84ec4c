"""The ``userns`` command line.

Structured like pip: :func:`main` parses, dispatches to one function per command, and
one place (:func:`main`) turns errors into a short message on stderr and an exit code
(:mod:`userns.cli._common`: ``EXIT_OK`` 0, ``EXIT_FAILURE`` 1 for an error or findings,
``EXIT_USAGE`` 2). Every command that reports something takes ``--json`` (keys documented
in ``docs/cli.md``); with ``--json`` an error is one document too,
``{"ok": false, "error": {...}}``. ``--debug`` shows the traceback.

Each command group is a module of this package with a ``register(sub)`` function
(:data:`COMMAND_MODULES`); the commands only call the library and print. A command line
that names a command builds (and imports) only the module of that command, so start-up
stays small; ``userns``, ``userns --help`` and an unknown command build them all.
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .. import __version__
from .._lazy import lazy_names
from ..errors import UsernsError
from ._common import (
    EXAMPLE_SUBGID,
    EXAMPLE_SUBUID,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Output,
    UsageError,
    error_document,
    prefix_message,
)

if TYPE_CHECKING:
    from ..formats.registry import detect_format

__all__ = [
    "COMMAND_MODULES",
    "EXAMPLE_SUBGID",
    "EXAMPLE_SUBUID",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "UsageError",
    "build_parser",
    "detect_format",
    "main",
]

# ``detect_format`` is the registry's, imported on first use: ``import userns.cli`` loads
# neither the registry nor attrs, which a ``userns`` process imports in its start-up.
__getattr__, __dir__ = lazy_names(__name__, {"detect_format": "..formats.registry"}, __all__,
                                  globals())

#: The modules of this package that add commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "explain", "maps", "subid", "shift", "k8s", "doctor", "mount", "access")

#: The module of each command, so that a command line naming one imports only that
#: module. A command missing here still works: the whole parser is built for it
#: (``tests/test_startup.py`` checks this table against what the modules register).
_MODULE_OF: dict[str, str] = {
    "explain": "explain",
    "translate": "maps", "convert": "maps", "run": "maps",
    "check": "subid", "allocate": "subid",
    "shift": "shift", "unshift": "shift", "audit": "shift",
    "k8s": "k8s",
    "doctor": "doctor",
    "mount": "mount", "probe": "mount", "volume": "mount",
    "access": "access",
}


#: Set by :func:`main` before parsing: with ``--json`` a usage error prints no usage text.
_JSON_REQUESTED = False


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout at argparse's width, found without importing :mod:`shutil`.

    argparse makes a formatter for every option it adds, and each asks
    ``shutil.get_terminal_size()``; importing shutil (and bz2, lzma, fnmatch with it) is
    a few milliseconds of every start-up. :func:`_columns` is the same rule.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _columns() - 2 if width is None else width)


def _columns() -> int:
    """``shutil.get_terminal_size().columns``: ``COLUMNS`` when it is a positive number,
    else the width of the terminal on standard output, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):  # no stdout, closed, or not a terminal
        return 80


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`UsageError` instead of exiting.

    So :func:`main` reports it like every other error (``--json`` included). Its help
    is laid out by :class:`_Formatter` unless a command asks for another formatter.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if not _JSON_REQUESTED:
            self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``userns`` command."""
    return _build(COMMAND_MODULES)


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for this command line: with only its command's module when it names one.

    The command is the first argument after any ``--debug`` (the top-level options take
    no value). Anything else before it (``--help``, ``--version``, an abbreviation such as
    ``--deb``), no command, or a name that is not a command gets the whole parser, so
    help, usage errors and their lists of commands are the same as ever.
    """
    for arg in argv:
        if arg != "--debug":
            module = _MODULE_OF.get(arg)
            return _build((module,)) if module in COMMAND_MODULES else build_parser()
    return build_parser()


def _build(modules: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="userns",
        description="Linux user-namespace UID/GID mapping: explain, translate, convert, "
        "check, allocate, run, shift, unshift, audit, and more (see COMMAND).",
        epilog="Maps are given as text, @FILE or - (stdin), in any format of "
        "'userns convert --help'. Exit status: 0 ok, 1 error or findings, 2 usage.",
    )
    parser.add_argument("--version", action="version", version=f"userns {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in modules:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for command in sub.choices.values():
        _add_debug(command)
    return parser


def _add_debug(command: argparse.ArgumentParser) -> None:
    # Also after the command name; SUPPRESS keeps a --debug given before it.
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks")
    # Nested sub-commands (``userns k8s check``) take it too.
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            for nested in action.choices.values():
                _add_debug(nested)


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON, read before it is parsed (usage errors)."""
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv


class _StartUp:
    """The start-up of a ``userns`` process, from :func:`main` to the command's work.

    Start-up builds parsers and imports modules (the command's library among them,
    ``preload`` in its defaults): many objects that live as long as the process and no
    garbage worth a collection. So in the process's own :func:`main` (``argv`` not
    given: the ``userns`` command, ``python -m userns``) the collector is off until the
    work begins, and what start-up built is then frozen (:func:`gc.freeze`): no later
    collection scans it again, neither during the work nor at the interpreter's exit,
    which otherwise collects several times over everything still alive (an empty
    ``userns shift`` takes about a ninth less wall time). Called with ``argv`` (tests,
    other programs) nothing changes: freezing their objects is not ours to decide.
    """

    def __init__(self, own_process: bool) -> None:
        self.pending = own_process and gc.isenabled()
        if self.pending:
            gc.disable()

    def over(self) -> None:
        """The work begins: freeze what start-up built, collect as usual from now on."""
        if self.pending:
            self.pending = False
            gc.freeze()
            gc.enable()


def _raw_paths(stream: TextIO) -> None:
    """Let the process's own standard output write a path that is not valid in its
    encoding as the bytes the filesystem holds (Python reads such bytes as surrogate
    escapes), as ``ls`` or ``find`` print it, instead of raising: under a UTF-8 locale
    Python makes it strict."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None and getattr(stream, "errors", None) == "strict":
        reconfigure(errors="surrogateescape")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``userns`` command; return its exit status (0 ok, 1 error/findings, 2 usage)."""
    args_list = list(argv) if argv is not None else sys.argv[1:]
    startup = _StartUp(own_process=argv is None)
    if argv is None:
        _raw_paths(sys.stdout)
    try:
        return _run(args_list, startup)
    finally:
        startup.over()


def _run(args_list: list[str], startup: _StartUp) -> int:
    parser = _parser_for(args_list)
    as_json = _wants_json(args_list)
    global _JSON_REQUESTED
    _JSON_REQUESTED = as_json
    out = Output(sys.stdout, as_json)
    debug = "--debug" in args_list
    try:
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # --help and --version exit 0
            return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
        if args.command is None:
            parser.print_help(sys.stderr)
            raise UsageError("no command given")
        out = Output(sys.stdout, bool(getattr(args, "json", False)))
        for module in getattr(args, "preload", ()):  # the command's library, still start-up
            importlib.import_module(module)
        startup.over()
        code: int = args.func(args, out)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        hint = ""
        command = next((a for a in args_list if not a.startswith("-")), None)
        if command in ("shift", "unshift", "volume"):
            hint = ("; the journal is kept: run the same command again to resume, or "
                    "'userns shift --rollback' to undo")
        sys.stderr.write(f"userns: interrupted{hint}\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): not an error of ours; keep Python quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except UsernsError as err:
        if debug:
            _print_traceback()
        if isinstance(err, UsageError) and err.message.startswith("userns"):
            sys.stderr.write(f"{err.message}\n")
        else:
            sys.stderr.write(prefix_message(err.render()) + "\n")
        out.json(error_document(err))
        return EXIT_USAGE if isinstance(err, UsageError) else EXIT_FAILURE
    except OSError as err:
        if debug:
            _print_traceback()
        name = errno.errorcode.get(err.errno or 0, "")
        where = f"{err.filename}: " if err.filename else ""
        sys.stderr.write(f"userns: error: {where}{err.strerror or err} ({name})\n")
        out.json({"ok": False, "error": {"reason": name.lower() or "os-error",
                                         "message": f"{where}{err.strerror or err}",
                                         "path": err.filename, "line": None, "column": None}})
        return EXIT_FAILURE


def _print_traceback() -> None:
    import traceback  # only for --debug: not on every start-up

    traceback.print_exc()
