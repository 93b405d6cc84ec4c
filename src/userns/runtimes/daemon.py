"""Docker's daemon configuration as a host has it, and the data root dockerd leaves.

The edge of :mod:`userns.runtimes` that reads files (never the running daemon):

- :func:`read_daemon_config` — where ``userns-remap`` and ``data-root`` come from on the
  system rooted at ``root``: ``/etc/docker/daemon.json`` (or the ``--config-file`` the
  unit passes) and the flags of dockerd's command line, read from the systemd unit
  ``docker.service`` with its drop-ins (``ExecStart=``, ``Environment=``,
  ``EnvironmentFile=``, such as Debian's ``/etc/default/docker`` ``DOCKER_OPTS`` or
  RHEL's ``/etc/sysconfig/docker`` ``OPTIONS``). A key given both ways is dockerd's
  start-up error, reported as such.
- :func:`check_data_root` — whether ``<data-root>`` and ``<data-root>/<uid>.<gid>`` are
  as moby's ``setupDaemonRoot`` leaves them (mode 0710, owner root, group the remapped
  root's gid) and every parent lets the remapped root through.
- :func:`detect_docker_version` — ``dockerd --version``, for :func:`docker_rules`.

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "etc/docker").mkdir(parents=True)
>>> _ = (root / "etc/docker/daemon.json").write_text('{\\n  "userns-remap": "default"\\n}\\n')
>>> config = read_daemon_config(root)
>>> config.remap, config.data_root, config.userns_remap.where
('default', '/var/lib/docker', 'etc/docker/daemon.json:2')
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess

import attrs

from ..errors import Location, ParseError
from ._base import Note, RuntimeMaps

__all__ = [
    "DEFAULT_DATA_ROOT",
    "DaemonConfig",
    "Setting",
    "check_data_root",
    "detect_docker_version",
    "read_daemon_config",
]

#: dockerd's ``--data-root`` when nothing sets it.
DEFAULT_DATA_ROOT = "/var/lib/docker"
#: dockerd's ``--config-file`` when nothing sets it.
DEFAULT_CONFIG_FILE = "/etc/docker/daemon.json"
#: Where systemd looks for ``docker.service`` and its drop-ins, most important first.
UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "usr/lib/systemd/system",
             "lib/systemd/system")
#: The daemon options this module follows: the flag spellings of each.
_FLAGS = {"userns-remap": ("--userns-remap",), "data-root": ("--data-root", "--graph", "-g"),
          "config-file": ("--config-file",)}
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@attrs.frozen
class Setting:
    """One daemon option as a file sets it: ``name`` (``userns-remap``, ``data-root``,
    ``config-file``), its ``value``, the ``path`` (relative to the root read) and line,
    and ``how``: ``daemon.json`` or ``flag``."""

    name: str
    value: str
    path: str
    line: int | None
    how: str

    @property
    def where(self) -> str:
        """``path:line`` (or the path alone)."""
        return self.path if self.line is None else f"{self.path}:{self.line}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"name": self.name, "value": self.value, "path": self.path, "line": self.line,
                "how": self.how}


@attrs.frozen
class DaemonConfig:
    """dockerd's ``userns-remap`` and ``data-root`` on one system, and where they came from.

    ``userns_remap`` is ``None`` when nothing sets it (remapping OFF: container root is
    host root); ``data_root`` a :class:`Setting` or ``None`` (the default
    ``/var/lib/docker``). ``unit`` is the ``docker.service`` file read (``None``: none
    found), ``exec_start`` the dockerd command line it runs, ``notes`` what dockerd
    would refuse or what could not be followed.
    """

    userns_remap: Setting | None = None
    data_root_setting: Setting | None = None
    config_file: str = DEFAULT_CONFIG_FILE
    unit: str | None = None
    exec_start: tuple[str, ...] = ()
    notes: tuple[Note, ...] = ()

    @property
    def remap(self) -> str | None:
        """The ``userns-remap`` value, or ``None`` when remapping is off (unset or empty)."""
        if self.userns_remap is None or not self.userns_remap.value:
            return None
        return self.userns_remap.value

    @property
    def data_root(self) -> str:
        """The data root dockerd uses (``/var/lib/docker`` unless set)."""
        setting = self.data_root_setting
        return setting.value if setting is not None and setting.value else DEFAULT_DATA_ROOT

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "userns_remap": self.remap,
            "userns_remap_from": None if self.userns_remap is None else self.userns_remap.to_dict(),
            "data_root": self.data_root,
            "data_root_from": (None if self.data_root_setting is None
                               else self.data_root_setting.to_dict()),
            "config_file": self.config_file,
            "unit": self.unit,
            "exec_start": list(self.exec_start),
            "notes": [n.to_dict() for n in self.notes],
        }


def _rel(root: str, path: str) -> str:
    return os.path.relpath(path, root) if root not in ("", "/") else path


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _json_settings(root: str, config_file: str) -> tuple[list[Setting], list[Note]]:
    """``daemon.json``'s ``userns-remap`` and ``data-root`` (``graph``), with their lines."""
    path = os.path.join(root, config_file.lstrip("/"))
    text = _read(path)
    if text is None:
        return [], []
    shown = _rel(root, path)
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as err:
        line = text.splitlines()[err.lineno - 1] if text.splitlines() else ""
        raise ParseError(
            f"{shown} is not valid JSON: {err.msg}; dockerd refuses to start "
            "(fix the file, or move it away to use the defaults)", reason="daemon-json",
            location=Location(line=err.lineno, column=err.colno, text=line, path=shown),
        ) from None
    if not isinstance(data, dict):
        raise ParseError(f"{shown} must hold a JSON object, not {type(data).__name__}",
                         reason="daemon-json", location=Location(line=1, path=shown))
    out: list[Setting] = []
    notes: list[Note] = []
    for key, name in (("userns-remap", "userns-remap"), ("data-root", "data-root"),
                      ("graph", "data-root")):
        if key not in data:
            continue
        value = data[key]
        m = re.search(rf'"{re.escape(key)}"\s*:', text)
        at = text.count("\n", 0, m.start()) + 1 if m else None
        if not isinstance(value, str):
            notes.append(Note("daemon-json-type", f"{shown}: \"{key}\" must be a string, not "
                              f"{json.dumps(value)}: dockerd refuses to start", "error"))
            continue
        out.append(Setting(name, value, shown, at, "daemon.json"))
    return out, notes


def _unit_lines(root: str) -> tuple[str | None, list[tuple[str, str, int, str]]]:
    """The ``docker.service`` read and its ``(key, value, line, path)`` assignments in
    systemd's order: the unit, then the drop-ins sorted by file name."""
    unit = None
    for d in UNIT_DIRS:
        candidate = os.path.join(root, d, "docker.service")
        if os.path.isfile(candidate):
            unit = candidate
            break
    dropins: dict[str, str] = {}
    for d in reversed(UNIT_DIRS):  # /etc wins over /run over /usr/lib for the same name
        folder = os.path.join(root, d, "docker.service.d")
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.endswith(".conf"):
                    dropins[name] = os.path.join(folder, name)
    files = ([unit] if unit else []) + [dropins[n] for n in sorted(dropins)]
    out: list[tuple[str, str, int, str]] = []
    for path in files:
        section = ""
        for lineno, raw in enumerate((_read(path) or "").splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                key, value = line.split("=", 1)
                out.append((key.strip(), value.strip(), lineno, path))
    return unit, out


def _env_file(root: str, value: str, env: dict[str, str]) -> None:
    """Add ``KEY=value`` lines of an ``EnvironmentFile=`` to ``env`` (a missing file,
    ``-``-prefixed or not, adds nothing: systemd would refuse to start the unit only for
    the latter, and then dockerd does not run at all)."""
    text = _read(os.path.join(root, value.lstrip("-").lstrip("/")))
    if text is None:
        return
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, val = line.split("=", 1)
        words = shlex.split(val, comments=False) if val.strip() else [""]
        env[key.strip().removeprefix("export ").strip()] = " ".join(words)


def _expand(argv: list[str], env: dict[str, str]) -> list[str]:
    """systemd's ``ExecStart`` expansion: ``$VAR`` becomes several words, ``${VAR}`` one."""
    out: list[str] = []
    for word in argv:
        whole = re.fullmatch(r"\$(\w+)", word)
        if whole:
            out += env.get(whole[1], "").split()
            continue
        out.append(_VAR.sub(lambda m: env.get(m[1] or m[2], ""), word))
    return out


def _flags(argv: list[str], path: str, line: int | None) -> list[Setting]:
    out: list[Setting] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        for name, spellings in _FLAGS.items():
            for flag in spellings:
                if word == flag and i + 1 < len(argv):
                    out.append(Setting(name, argv[i + 1], path, line, "flag"))
                    i += 1
                elif word.startswith(flag + "="):
                    out.append(Setting(name, word[len(flag) + 1:], path, line, "flag"))
        i += 1
    return out


def read_daemon_config(root: str | os.PathLike[str] = "/") -> DaemonConfig:
    """dockerd's ``userns-remap`` and ``data-root`` on the system rooted at ``root``.

    Reads the ``docker.service`` unit and drop-ins (the last ``ExecStart=``, with its
    ``Environment=``/``EnvironmentFile=`` variables expanded), and the ``daemon.json``
    that command line names (``--config-file``, default ``/etc/docker/daemon.json``).
    Without any unit, ``/etc/sysconfig/docker`` ``OPTIONS`` and ``/etc/default/docker``
    ``DOCKER_OPTS`` are taken as the flags (an init script passes them). Raises
    :class:`~userns.ParseError` (``daemon-json``, with line and column) when daemon.json
    is not a JSON object. Only reads files; never asks a running daemon.
    """
    base = os.fspath(root)
    notes: list[Note] = []
    unit, assignments = _unit_lines(base)
    env: dict[str, str] = {}
    exec_start: tuple[list[str], str, int] | None = None
    for key, value, lineno, path in assignments:
        if key == "Environment":
            for item in shlex.split(value):
                if "=" in item:
                    k, v = item.split("=", 1)
                    env[k] = v
        elif key == "EnvironmentFile":
            _env_file(base, value, env)
        elif key == "ExecStart":
            exec_start = (shlex.split(value.lstrip("@-:+!")), path, lineno) if value else None
    flags: list[Setting] = []
    argv: list[str] = []
    if exec_start is not None:
        argv = _expand(exec_start[0], env)
        flags = _flags(argv, _rel(base, exec_start[1]), exec_start[2])
    elif unit is None:
        for file, var in (("etc/sysconfig/docker", "OPTIONS"), ("etc/default/docker",
                                                                 "DOCKER_OPTS")):
            found: dict[str, str] = {}
            _env_file(base, "-/" + file, found)
            if found.get(var):
                flags += _flags(found[var].split(), file, None)
                notes.append(Note("daemon-no-unit",
                                  f"no docker.service unit found: assumed dockerd is started "
                                  f"with {file}'s {var}", "info"))
    config_file = DEFAULT_CONFIG_FILE
    for s in flags:
        if s.name == "config-file":
            config_file = s.value
    from_json, json_notes = _json_settings(base, config_file)
    notes += json_notes
    chosen: dict[str, Setting] = {}
    for s in from_json + [f for f in flags if f.name != "config-file"]:
        other = chosen.get(s.name)
        if other is not None and other.how != s.how:
            notes.append(Note(
                "daemon-config-conflict",
                f"unable to configure the Docker daemon with file {config_file}: the following "
                f"directives are specified both as a flag and in the configuration file: "
                f"{s.name}: (from flag: {s.value if s.how == 'flag' else other.value}, from file: "
                f"{other.value if s.how == 'flag' else s.value}) — dockerd refuses to start "
                f"({other.where} and {s.where})", "error"))
        chosen[s.name] = s
    return DaemonConfig(chosen.get("userns-remap"), chosen.get("data-root"), config_file,
                        None if unit is None else _rel(base, unit), tuple(argv), tuple(notes))


# -- the data root ---------------------------------------------------------------------------


def _can_traverse(st: os.stat_result, uid: int, gid: int) -> bool:
    """moby ``CanAccess``: an x bit for the owner, the group or others, as applies."""
    perms = st.st_mode & 0o777
    return bool((st.st_uid == uid and perms & 0o100) or (st.st_gid == gid and perms & 0o010)
                or perms & 0o001)


def check_data_root(data_root: str | os.PathLike[str], docker: RuntimeMaps, *,
                    daemon_uid: int = 0, root: str | os.PathLike[str] = "/") -> list[Note]:
    """What differs from the data root moby's ``setupDaemonRoot`` leaves for ``docker``.

    dockerd chmods ``data_root`` to 0711, then makes it and ``<uid>.<gid>`` (the remapped
    root's host uid and gid) mode 0710, owner ``daemon_uid`` (root), group the remapped
    gid, and refuses to start when a parent directory does not let the remapped root
    through. An empty list: as dockerd would leave it. A missing directory is an
    ``info`` note (dockerd creates it); a wrong mode or owner a ``warning`` (dockerd fixes
    it at its next start, so it was changed since, or a different remap made it); a
    blocking parent an ``error`` with dockerd's message. Other ``<uid>.<gid>``
    directories are listed (images and containers of an earlier remap setting).
    ``root`` is the system's root directory when ``data_root`` lies in an image of it
    (``<root>/var/lib/docker``): the parents are walked up to it, not past it, as dockerd
    walks up to ``/``.
    """
    base = os.fspath(data_root)
    pair = docker.pair
    if pair is None or docker.data_root is None:
        return []
    uid, gid = pair.root
    notes: list[Note] = []
    sub = os.path.join(base, docker.data_root)
    for path, what in ((base, "the data root"), (sub, "the remapped root's directory")):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            notes.append(Note("data-root-missing", f"{what} {path} does not exist yet: dockerd "
                              f"creates it (mode 0710, owner {daemon_uid}:{gid})", "info"))
            continue
        if not stat.S_ISDIR(st.st_mode):
            notes.append(Note("data-root-not-dir", f"{what} {path} is not a directory: "
                              "dockerd cannot start", "error"))
            continue
        if st.st_mode & 0o7777 != 0o710:
            notes.append(Note("data-root-mode", f"{what} {path} has mode "
                              f"{st.st_mode & 0o7777:04o}; dockerd leaves 0710", "warning"))
        if (st.st_uid, st.st_gid) != (daemon_uid, gid):
            notes.append(Note("data-root-owner", f"{what} {path} is owned by "
                              f"{st.st_uid}:{st.st_gid}; dockerd leaves {daemon_uid}:{gid} "
                              "(root, and the remapped root's group)", "warning"))
    top = os.path.abspath(os.fspath(root))
    parent = os.path.dirname(os.path.abspath(sub))
    while parent not in ("/", top):
        try:
            st = os.stat(parent)
        except FileNotFoundError:
            parent = os.path.dirname(parent)
            continue
        if not _can_traverse(st, uid, gid):
            notes.append(Note(
                "data-root-blocked",
                f"{parent} (mode {st.st_mode & 0o777:04o}, {st.st_uid}:{st.st_gid}) does not "
                f"let the remapped root {uid}:{gid} through: dockerd refuses to start with "
                f"'a subdirectory in your graphroot path ({sub}) restricts access to the "
                "remapped root uid/gid; please fix by allowing 'o+x' permissions on existing "
                "directories'", "error"))
        parent = os.path.dirname(parent)
    try:
        others = sorted(n for n in os.listdir(base) if re.fullmatch(r"\d+\.\d+", n)
                        and n != docker.data_root)
    except (FileNotFoundError, NotADirectoryError):
        others = []
    if others:
        notes.append(Note("data-root-other-remaps",
                          f"{base} also holds {', '.join(others)}: the images and containers "
                          "of another remap setting, invisible with this one", "info"))
    return notes


def detect_docker_version(dockerd: str = "dockerd") -> str | None:
    """``dockerd --version``'s output (``Docker version 20.10.24+dfsg1, build 5d6db84``),
    or ``None`` when dockerd is not installed or prints nothing."""
    try:
        run = subprocess.run([dockerd, "--version"], capture_output=True, text=True,
                             timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = run.stdout.strip()
    return text if run.returncode == 0 and text else None
