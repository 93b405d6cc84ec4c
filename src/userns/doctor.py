"""Can this host run user namespaces, and what will go wrong: a list of checks.

Each :class:`Check` has a stable ``name``, a ``status`` (``ok``, ``info``, ``warning``,
``error``, or ``not-run`` with the reason), the ``evidence`` it read (files, values,
modes) and the ``fix``. :func:`diagnose` runs them all:

- ``max-user-namespaces``, ``unprivileged-userns-clone`` (Debian's kernel patch),
  ``apparmor-restrict-userns`` (Ubuntu 23.10+): the sysctls. The live ``/proc/sys`` is
  read only for the running host; for another root, ``<root>/proc/sys`` when it exists
  (a fake tree), else what the ``sysctl.d`` files there would set at boot;
- ``newuidmap``, ``newgidmap``: present, and setuid root or carrying
  ``cap_setuid``/``cap_setgid`` (``+ep``) file capabilities;
- ``subid-source``: ``subid:`` in ``nsswitch.conf`` (the files, or a plugin such as
  ``sss`` whose answers the files do not show), and ``getsubids-agrees``: the real
  ``getsubids`` against what the files say, owner by owner;
- ``subid-lint``: :func:`userns.subid.lint` of ``subuid``/``subgid``;
- ``idmapped-mount:PATH``: :func:`userns.mount.probe` of each path given;
- ``docker-remap``: dockerd's ``userns-remap`` (:func:`userns.runtimes.read_daemon_config`)
  and whether its data root is as dockerd leaves it; ``kubelet``: :mod:`userns.kubelet`'s
  verdict when the node has kubelet.

Every check takes the ``root`` directory whose files it reads, so a host image or a
fixture can be checked as well as the running system.

>>> report = diagnose("/nonexistent-root", run_getsubids=False)
>>> report.check("max-user-namespaces").status
'not-run'
"""

from __future__ import annotations

import glob
import importlib
import os
import platform
import re
import shlex
import stat
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs

from .errors import UsernsError

__all__ = [
    "PSEUDO_FILESYSTEMS",
    "STATUSES",
    "Check",
    "DoctorReport",
    "check_helper",
    "check_sysctls",
    "diagnose",
    "read_sysctl",
    "subid_source",
]

Status = Literal["ok", "info", "warning", "error", "not-run"]
#: Check statuses from the best to the worst (``not-run`` is none of them).
STATUSES: tuple[str, ...] = ("ok", "info", "warning", "error", "not-run")

_PATH_DIRS = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
_SYSCTL_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d",
                "lib/sysctl.d")
_CAP_SETGID = 6
_CAP_SETUID = 7


@attrs.frozen
class Check:
    """One check: ``name`` (stable), ``title``, ``status``, ``evidence``, ``fix``.

    >>> Check("x", "X", "ok", "read 1").failed
    False
    """

    name: str
    title: str
    status: Status
    evidence: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        """The check found something that breaks user namespaces (status ``error``)."""
        return self.status == "error"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": self.status,
                "evidence": self.evidence, "fix": self.fix}


@attrs.frozen
class DoctorReport:
    """Every check run on ``root``; ``live`` says whether that is the running host."""

    root: str
    live: bool
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """No check is ``error``."""
        return not any(c.failed for c in self.checks)

    def check(self, name: str) -> Check:
        """The check called ``name`` (``KeyError`` when there is none)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)


def _is_live(root: str) -> bool:
    return os.path.realpath(root) == "/"


def _root_option(root: str) -> str:
    """`` --root DIR`` for a command run on ``root``; nothing for the running host."""
    return "" if _is_live(root) else f" --root {shlex.quote(root)}"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    except OSError:
        return None


# -- sysctls ----------------------------------------------------------------------------


def _sysctl_files(root: str) -> list[str]:
    """The sysctl.d files systemd-sysctl applies, in order (later wins), then sysctl.conf.

    A name in an earlier directory hides the same name in later ones; files run sorted
    by name; ``/etc/sysctl.conf`` comes last.
    """
    chosen: dict[str, str] = {}
    for d in _SYSCTL_DIRS:
        for path in glob.glob(os.path.join(root, d, "*.conf")):
            chosen.setdefault(os.path.basename(path), path)
    files = [chosen[name] for name in sorted(chosen)]
    conf = os.path.join(root, "etc", "sysctl.conf")
    if os.path.isfile(conf):
        files.append(conf)
    return files


def read_sysctl(name: str, root: str = "/", *, proc_sys: str | None = None
                ) -> tuple[str | None, str]:
    """The value of sysctl ``name`` (``user.max_user_namespaces``) and where it came from.

    ``proc_sys``: the ``/proc/sys`` tree to read (default: the live one for the running
    host, ``<root>/proc/sys`` when that exists, else none). Without a tree, the value the
    ``sysctl.d`` files under ``root`` set at boot; ``(None, why)`` when nothing says.
    """
    tree = proc_sys
    if tree is None:
        if _is_live(root):
            tree = "/proc/sys"
        elif os.path.isdir(os.path.join(root, "proc", "sys")):
            tree = os.path.join(root, "proc", "sys")
    if tree is not None:
        path = os.path.join(tree, *name.split("."))
        text = _read(path)
        if text is not None:
            return text.strip(), f"{path} = {text.strip()}"
        if os.path.isdir(tree):
            return None, f"{path} does not exist"
    value: str | None = None
    where = f"no sysctl.d file under {root} sets {name}"
    for path in _sysctl_files(root):
        for lineno, line in enumerate((_read(path) or "").splitlines(), 1):
            body = line.strip()
            if not body or body[0] in "#;":
                continue
            key, eq, val = body.partition("=")
            if eq and key.strip().lstrip("-").replace("/", ".") == name:
                value, where = val.strip(), f"{path}:{lineno}: {body}"
    return value, where


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def check_sysctls(root: str = "/", *, proc_sys: str | None = None) -> list[Check]:
    """The three sysctls that decide whether user namespaces can be made at all.

    >>> [c.name for c in check_sysctls("/nonexistent")]
    ['max-user-namespaces', 'unprivileged-userns-clone', 'apparmor-restrict-userns']
    """
    out: list[Check] = []
    raw, where = read_sysctl("user.max_user_namespaces", root, proc_sys=proc_sys)
    value = _int(raw)
    title = "user.max_user_namespaces > 0"
    if raw is None:
        live = _is_live(root) and proc_sys is None
        out.append(Check("max-user-namespaces", title, "error" if live else "not-run", where,
                         "a kernel built with CONFIG_USER_NS=y" if live else None))
    elif value is None:
        out.append(_unreadable("max-user-namespaces", title, "user.max_user_namespaces",
                               raw, where, "a number such as 28633"))
    elif value <= 0:
        out.append(Check(
            "max-user-namespaces", title, "error",
            f"{where}: no process may create a user namespace (EINVAL/ENOSPC on unshare)",
            "sysctl -w user.max_user_namespaces=28633 and keep it in "
            "/etc/sysctl.d/99-userns.conf (user.max_user_namespaces = 28633)"))
    else:
        out.append(Check("max-user-namespaces", title, "ok", where))
    raw, where = read_sysctl("kernel.unprivileged_userns_clone", root, proc_sys=proc_sys)
    title = "kernel.unprivileged_userns_clone (Debian kernels)"
    if raw is None:
        out.append(Check("unprivileged-userns-clone", title, "ok",
                         f"{where}: the kernel has no such switch (not Debian's patch)"))
    elif _int(raw) is None:
        out.append(_unreadable("unprivileged-userns-clone", title,
                               "kernel.unprivileged_userns_clone", raw, where, "0 or 1"))
    elif _int(raw) == 0:
        out.append(Check(
            "unprivileged-userns-clone", title, "warning",
            f"{where}: only root (CAP_SYS_ADMIN) may create user namespaces; rootless "
            "Podman, unshare --user and browsers' sandboxes fail with EPERM",
            "sysctl -w kernel.unprivileged_userns_clone=1 and keep it in /etc/sysctl.d/"))
    else:
        out.append(Check("unprivileged-userns-clone", title, "ok", where))
    raw, where = read_sysctl("kernel.apparmor_restrict_unprivileged_userns", root,
                             proc_sys=proc_sys)
    title = "kernel.apparmor_restrict_unprivileged_userns (Ubuntu 23.10+)"
    if raw is None:
        out.append(Check("apparmor-restrict-userns", title, "ok",
                         f"{where}: AppArmor does not restrict user namespaces here"))
    elif _int(raw) is None:
        out.append(_unreadable("apparmor-restrict-userns", title,
                               "kernel.apparmor_restrict_unprivileged_userns", raw, where,
                               "0 or 1"))
    elif _int(raw) == 1:
        out.append(Check(
            "apparmor-restrict-userns", title, "warning",
            f"{where}: an unprivileged process gets a user namespace without capabilities "
            "unless an AppArmor profile with 'userns,' covers its program (rootless "
            "Podman, Buildah: 'newuidmap: write to uid_map failed')",
            "give the tool a profile with 'userns,' (/etc/apparmor.d/), or "
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"))
    else:
        out.append(Check("apparmor-restrict-userns", title, "ok", where))
    return out


def _unreadable(name: str, title: str, sysctl: str, raw: str, where: str,
                wanted: str) -> Check:
    """A sysctl whose value is no number: the kernel refuses such a write (EINVAL), so
    what it runs with cannot be told from here."""
    return Check(name, title, "warning",
                 f"{where}: the value {raw!r} is unreadable (not a number): writing it fails "
                 f"with EINVAL and the kernel keeps whatever value it had, which this "
                 f"check cannot tell",
                 f"set {sysctl} to {wanted} where {raw!r} is written")


# -- newuidmap / newgidmap ------------------------------------------------------------


def _find(root: str, name: str) -> str | None:
    for d in _PATH_DIRS:
        path = os.path.join(root, d, name)
        if os.path.lexists(path):
            return path
    return None


def check_helper(name: Literal["newuidmap", "newgidmap"], root: str = "/",
                 *, path: str | None = None) -> Check:
    """Is ``name`` there, setuid root or with the file capability it needs?

    >>> check_helper("newuidmap", "/nonexistent").status
    'warning'
    """
    from .shift.xattrs import XattrFormatError, parse_capability

    cap_name, cap_bit = (("cap_setuid", _CAP_SETUID) if name == "newuidmap"
                         else ("cap_setgid", _CAP_SETGID))
    title = f"{name} present and privileged (setuid root or {cap_name}+ep)"
    where = path or _find(root, name)
    if where is None:
        return Check(name, title, "warning",
                     f"no {name} in {', '.join('/' + d for d in _PATH_DIRS)} under {root}",
                     "install it (Debian/Ubuntu: apt install uidmap; Fedora: shadow-utils); "
                     "rootless Podman, Buildah and unshare --map-auto need it")
    try:
        st = os.stat(where)
    except OSError as err:
        return Check(name, title, "error", f"{where}: {err.strerror}",
                     f"reinstall {name}")
    mode = stat.filemode(st.st_mode)
    evidence = f"{where}: {mode} uid {st.st_uid} gid {st.st_gid}"
    if not stat.S_ISREG(st.st_mode):
        return Check(name, title, "error", f"{evidence}: not a regular file",
                     f"reinstall {name}")
    if st.st_mode & 0o022 and st.st_uid == 0:
        return Check(name, title, "error",
                     f"{evidence}: writable by group or others, so anyone can replace a "
                     "setuid-root program", f"chmod go-w {where}")
    cap = None
    try:
        raw = os.getxattr(where, "security.capability")
        cap = parse_capability(raw)
    except OSError:
        cap = None
    except XattrFormatError as err:
        evidence += f"; security.capability unreadable: {err.message}"
    if cap is not None:
        caps = f"security.capability revision {cap.revision}, permitted {cap.permitted:#x}" \
               f"{', effective' if cap.effective else ''}"
        evidence += f"; {caps}"
    if st.st_mode & stat.S_ISUID and st.st_uid == 0:
        return Check(name, title, "ok", f"{evidence}: setuid root")
    if cap is not None and cap.permitted >> cap_bit & 1:
        if not cap.effective:
            return Check(name, title, "error",
                         f"{evidence}: {cap_name} is permitted but not effective; {name} "
                         "does not raise it itself", f"setcap {cap_name}+ep {where}")
        if cap.rootid not in (None, 0):
            return Check(name, title, "error",
                         f"{evidence}: the capability only counts in a user namespace "
                         f"whose root is host uid {cap.rootid}", f"setcap {cap_name}+ep "
                         f"{where} (as host root)")
        return Check(name, title, "ok", f"{evidence}: {cap_name}+ep")
    why = ("setuid but owned by uid " + str(st.st_uid) if st.st_mode & stat.S_ISUID
           else "neither setuid nor carrying " + cap_name)
    return Check(name, title, "error",
                 f"{evidence}: {why}; as a normal user it fails with 'write to "
                 f"{'uid' if name == 'newuidmap' else 'gid'}_map failed: Operation not "
                 "permitted'",
                 f"chown root:root {where} && chmod u+s {where}  (or: setcap "
                 f"{cap_name}+ep {where})")


# -- where subordinate IDs come from ----------------------------------------------------


def subid_source(root: str = "/") -> tuple[str, str]:
    """The ``subid:`` source of ``<root>/etc/nsswitch.conf`` (``"files"`` when there is
    none) and the line it came from. libsubid uses the first word only."""
    path = os.path.join(root, "etc", "nsswitch.conf")
    text = _read(path)
    if text is None:
        return "files", f"no {path}: libsubid reads the subuid and subgid files"
    for lineno, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if body.startswith("subid:"):
            words = body[len("subid:"):].split()
            return (words[0] if words else "files"), f"{path}:{lineno}: {line.strip()}"
    return "files", f"{path} has no 'subid:' line: libsubid reads the subuid and subgid files"


def _check_source(root: str) -> Check:
    source, where = subid_source(root)
    title = "where subordinate IDs come from (nsswitch.conf 'subid:')"
    if source == "files":
        return Check("subid-source", title, "ok", f"{where}")
    libs = [p for d in ("usr/lib", "lib", "usr/lib64", "lib64")
            for p in glob.glob(os.path.join(root, d, "**", f"libsubid_{source}.so*"),
                               recursive=True)]
    if not libs:
        return Check("subid-source", title, "warning",
                     f"{where}: no libsubid_{source}.so under {root}: libsubid prints "
                     f"'Error opening libsubid_{source}.so' and falls back to the files",
                     f"install the {source} subid plugin, or write 'subid: files'")
    return Check("subid-source", title, "info",
                 f"{where}: ranges come from {source} ({libs[0]}), not from the files; "
                 "predictions made from /etc/subuid do not apply",
                 "check ranges with getsubids OWNER rather than the files")


def _check_getsubids(root: str, subuid: Any, subgid: Any, accounts: Any,
                     limit: int = 20) -> Check:
    from .kubelet import find_getsubids, predict_getsubids, run_getsubids

    title = "getsubids agrees with the subuid/subgid files"
    if find_getsubids(root) is None:
        where = "on PATH" if _is_live(root) else f"under {root}"
        return Check("getsubids-agrees", title, "not-run",
                     f"no getsubids {where} (uidmap / shadow-utils-subid): nothing there "
                     "asks libsubid, so there is no answer to compare with the files")
    owners = list(dict.fromkeys(e.owner for e in (*subuid.entries, *subgid.entries)))
    if not owners:
        return Check("getsubids-agrees", title, "not-run",
                     "the files list no owner to ask getsubids about")
    differ: list[str] = []
    asked = 0
    for owner in owners[:limit]:
        pairs: tuple[tuple[Literal["uid", "gid"], Any], ...] = (("uid", subuid),
                                                                 ("gid", subgid))
        for kind, file in pairs:
            got = run_getsubids(root, owner, kind=kind)
            if got is None:
                return Check("getsubids-agrees", title, "not-run",
                             "getsubids could not run here (not installed, or another root "
                             "without root privileges and unshare)")
            asked += 1
            want = predict_getsubids(file, owner, accounts=accounts, kind=kind)
            if (got.stdout, got.status) != (want.stdout, want.status):
                said = got.stdout.strip() or got.stderr.strip()
                wanted = want.stdout.strip() or want.stderr.strip()
                differ.append(f"'{got.command}' printed {said!r}, the files say {wanted!r}")
    more = f" (first {limit} of {len(owners)} owners)" if len(owners) > limit else ""
    if differ:
        return Check("getsubids-agrees", title, "warning",
                     f"{len(differ)} of {asked} answers differ{more}: " + "; ".join(differ[:3]),
                     "another source (nsswitch.conf 'subid:') answers: read ranges with "
                     "getsubids, or make the files the source")
    return Check("getsubids-agrees", title, "ok",
                 f"getsubids printed what the files say for {asked} queries{more}")


def _check_lint(root: str, subuid: Any, subgid: Any, accounts: Any, defs: Any) -> Check:
    from .subid import lint

    title = "lint of subuid and subgid"
    findings = lint(subuid, subgid, accounts=accounts, defs=defs)
    if not findings:
        return Check("subid-lint", title, "ok",
                     f"{subuid.path}: {len(subuid)} entries, {subgid.path}: {len(subgid)} "
                     "entries, no finding")
    worst = max(int(f.severity) for f in findings)
    status: Status = "error" if worst >= 2 else "warning" if worst == 1 else "info"
    shown = "; ".join(str(f) for f in findings[:3])
    more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
    return Check("subid-lint", title, status, f"{len(findings)} finding(s): {shown}{more}",
                 f"userns check{_root_option(root)} shows each finding "
                 "with its line and fix")


# -- idmapped mounts, Docker, kubelet ------------------------------------------------


#: Kernel pseudo filesystems: their files are the kernel's, not a volume's; the kernel
#: never idmaps them and there is nothing on disk to shift.
PSEUDO_FILESYSTEMS: frozenset[str] = frozenset({
    "proc", "sysfs", "devpts", "devtmpfs", "cgroup", "cgroup2", "debugfs", "tracefs",
    "securityfs", "configfs", "bpf", "mqueue", "pstore", "hugetlbfs", "fusectl",
    "efivarfs", "binfmt_misc", "autofs", "nsfs", "selinuxfs", "rpc_pipefs",
})
_IDMAP_FILESYSTEMS = "ext4, xfs, btrfs, tmpfs 6.3+, overlayfs 5.19+"
_FS_NOTES = {
    "tmpfs": "tmpfs takes idmapped mounts from Linux 6.3",
    "overlay": "an overlayfs mount itself cannot be idmapped: idmap its layers (Linux "
               "5.19+) and mount the overlay over them",
}
# The probe's own advice names the Python API; doctor speaks in commands.
_API_ADVICE = re.compile(r";?\s*(?:shift the tree instead|use)\s*\(?\s*(?:prepare_volume\()?"
                         r"strategy=.*$", re.DOTALL)


def _mount_fix(path: str) -> str:
    return (f"shift the tree instead: userns volume {shlex.quote(path)} --map MAP --strategy "
            f"shift (or userns shift), or put it on a filesystem that takes idmapped mounts "
            f"({_IDMAP_FILESYSTEMS})")


def _render_probe(path: str, answer: Any) -> tuple[Status, str, str | None]:
    """The status, evidence and fix of :func:`userns.mount.probe`'s ``answer``, written
    from its ``reason`` and fields: its ``message`` is the library's (its advice names
    Python keywords), and the CLI names commands."""
    reason = str(answer.reason)
    fs = getattr(answer, "fs_type", None)
    at = getattr(answer, "mount_point", None)
    on = f"{fs}, mounted at {at}" if fs and at else fs or "its filesystem"
    if answer.ok:
        return "ok", f"{path} ({on}) can be idmapped", None
    err = getattr(answer, "errno", None)
    code = f" ({os.strerror(err)})" if isinstance(err, int) else ""
    if reason == "fs-unsupported" and fs in PSEUDO_FILESYSTEMS:
        return ("error",
                f"{path} is on {fs}, a kernel pseudo filesystem (mounted at {at}): it is "
                "not a volume; "
                "the kernel never idmaps it and no owner there is stored on disk "
                f"[{reason}]",
                f"nothing to idmap or shift at {path}: pseudo filesystems are not volumes "
                "(a container gets its own /proc, /sys and /dev from its runtime); check "
                "the directory you mean to share instead")
    if reason == "fs-unsupported":
        note = _FS_NOTES.get(fs or "", "")
        if fs and fs.startswith("fuse"):
            note = ("FUSE takes idmapped mounts from Linux 6.12, and only from a server "
                    "that sets FUSE_ALLOW_IDMAP")
        return ("error", f"{path} ({on}): the kernel refused to idmap this filesystem"
                f"{code}{': ' + note if note else ''} [{reason}]", _mount_fix(path))
    if reason == "not-found":
        gone = os.strerror(err) if isinstance(err, int) else "not found"
        return ("error", f"{path}: {gone} [{reason}]",
                "give a path that exists: the check probes the mount it is on")
    if reason == "not-permitted":
        return ("error",
                f"{path} ({on}): not permitted to idmap it{code}: that needs CAP_SYS_ADMIN "
                "over the filesystem and the mount namespace (root on the host for a host "
                f"filesystem) [{reason}]",
                "run userns doctor as root to learn whether root could; else "
                + _mount_fix(path))
    if reason == "already-idmapped":
        return ("error", f"{path} is on a mount that is idmapped already (at {at}), and this "
                f"kernel cannot idmap it again [{reason}]",
                "idmap the original, unmapped mount instead")
    if reason == "no-kernel-support":
        return ("error", f"this kernel ({platform.release()}) has no mount_setattr (Linux "
                f"5.12+), or a seccomp filter blocks it [{reason}]", _mount_fix(path))
    if reason == "unsupported-arch":
        return ("error", f"userns does not know the mount system calls' numbers on "
                f"{platform.machine()} [{reason}]",
                _mount_fix(path) + "; or util-linux: mount --bind -o X-mount.idmap=MAP")
    cause = _API_ADVICE.sub("", str(answer.message)).rstrip(" ;,:")
    return "error", f"{cause} [{reason}]", _mount_fix(path)


def _check_mount(path: str) -> Check:
    title = f"idmapped mounts on {path}"
    name = f"idmapped-mount:{path}"
    try:
        mount = importlib.import_module("userns.mount")
    except ImportError as err:
        return Check(name, title, "not-run", f"userns.mount is not available: {err}")
    probe: Callable[[str], Any] | None = getattr(mount, "probe", None)
    if probe is None:
        return Check(name, title, "not-run", "userns.mount has no probe()")
    try:
        answer = probe(path)
    except (UsernsError, OSError) as err:
        return Check(name, title, "error", f"{path}: {err}")
    status, evidence, fix = _render_probe(path, answer)
    return Check(name, title, status, evidence, fix)


def _docker_reader() -> tuple[Callable[..., Any] | None, str]:
    try:
        module = importlib.import_module("userns.runtimes")
    except ImportError as err:
        return None, f"userns.runtimes cannot be imported: {err}"
    found = getattr(module, "read_daemon_config", None)
    if not callable(found):
        return None, "userns.runtimes has no read_daemon_config in this version"
    return found, "userns.runtimes.read_daemon_config"


def _note_status(notes: Sequence[Any]) -> Status:
    worst = max((int(n.severity) for n in notes), default=0)
    return "error" if worst >= 2 else "warning" if worst == 1 else "ok"


def _check_docker(root: str) -> Check:
    title = "Docker's userns-remap setting"
    reader, name = _docker_reader()
    if reader is None:
        return Check("docker-remap", title, "not-run", name)
    try:
        config = reader(root)
    except UsernsError as err:
        return Check("docker-remap", title, "error", err.render(),
                     "fix the file: dockerd refuses to start on it")
    except OSError as err:
        return Check("docker-remap", title, "error", f"{err.filename}: {err.strerror}")
    notes = list(config.notes)
    json_file = os.path.join(root, config.config_file.lstrip("/"))
    if config.remap is None and config.unit is None and not os.path.exists(json_file):
        return Check("docker-remap", title, "info",
                     f"no docker.service unit and no {config.config_file} under {root}: "
                     "Docker is not set up here")
    if config.remap is None:
        return Check("docker-remap", title, "warning",
                     f"userns-remap is OFF ({config.config_file}"
                     f"{', ' + config.unit if config.unit else ''}): container root is host "
                     "root, and a container given -v /etc:/root/etc can append to host files",
                     f'set "userns-remap": "default" in {config.config_file} and restart '
                     "dockerd (it creates dockremap and its subuid/subgid ranges)")
    where = config.userns_remap.where if config.userns_remap is not None else "?"
    evidence = f"userns-remap = {config.remap!r} ({where}), data root {config.data_root}"
    try:
        from .runtimes import docker_remap
        from .runtimes.daemon import check_data_root
        from .subid import Accounts, SubidFile

        files = [SubidFile.parse(_read(os.path.join(root, "etc", f"sub{k}")) or "")
                 for k in ("uid", "gid")]
        maps = docker_remap(files[0], files[1], config.remap, accounts=Accounts.read(root))
        if maps.error is not None:
            return Check("docker-remap", title, "error",
                         f"{evidence}: dockerd would stop: {maps.error.message}",
                         "create the remap user and group, or fix the userns-remap value")
        notes += list(maps.notes)
        top = os.path.abspath(root)
        for n in check_data_root(os.path.join(root, config.data_root.lstrip("/")), maps):
            # check_data_root walks every parent up to /: above another root, those are
            # this machine's directories, not the node's.
            if (n.reason == "data-root-blocked" and top != "/"
                    and not n.message.startswith(top + "/")):
                continue
            notes.append(n)
    except UsernsError as err:
        return Check("docker-remap", title, "error", f"{evidence}: {err.message}",
                     "fix the remap user or its subuid/subgid ranges")
    except (ImportError, AttributeError, TypeError) as err:
        notes_text = f"; the data root was not checked ({err})"
        return Check("docker-remap", title, _note_status(notes), evidence + notes_text)
    status = _note_status(notes)
    shown = "; ".join(n.message for n in notes)
    return Check("docker-remap", title, status,
                 evidence + (f": {shown}" if shown else ": as dockerd would leave it"),
                 None if status == "ok" else "userns explain says what dockerd builds and why")


def _check_kubelet(root: str, run_getsubids: bool) -> Check:
    from .kubelet import DEFAULT_KUBELET_DIR, KUBELET_USER, read_node
    from .subid import Accounts

    title = "kubelet's pool for pods in user namespaces"
    kdir = os.path.join(root, DEFAULT_KUBELET_DIR.lstrip("/"))
    has_user = Accounts.read(root).user(KUBELET_USER) is not None
    if not os.path.isdir(kdir) and not has_user:
        return Check("kubelet", title, "not-run",
                     f"no {kdir} and no '{KUBELET_USER}' account: not a Kubernetes node")
    node = read_node(root, run_real=run_getsubids)
    pool = "" if node.pool is None else (f"pool {node.pool.first}+{node.pool.length} "
                                         f"({node.pool.slots} slots, {node.pool.source}); ")
    worst = [f for f in node.findings if int(f.severity) >= 2]
    if node.error is not None:
        return Check("kubelet", title, "error", f"{pool}kubelet would stop: "
                     f"{node.error.message}", f"userns k8s check{_root_option(root)} says why, "
                     f"and userns k8s pods{_root_option(root)} what pool would keep the pods")
    if worst:
        return Check("kubelet", title, "error" if any(int(f.severity) >= 3 for f in worst)
                     else "warning", f"{pool}" + "; ".join(f.message for f in worst[:2]),
                     f"userns k8s check{_root_option(root)} lists every finding with its fix")
    return Check("kubelet", title, "ok", f"{pool}kubelet would start")


# -- all of it ---------------------------------------------------------------------


def diagnose(root: str = "/", paths: Sequence[str] = (), *, proc_sys: str | None = None,
             run_getsubids: bool = True) -> DoctorReport:
    """Run every check on the system at ``root`` (and probe each of ``paths``).

    ``proc_sys`` overrides the ``/proc/sys`` tree read for the sysctls;
    ``run_getsubids=False`` skips running the real ``getsubids``.
    """
    from .logindefs import LoginDefs
    from .subid import Accounts, SubidFile

    root = os.fspath(root)
    checks: list[Check] = []
    checks.append(_check_docker(root))
    checks += check_sysctls(root, proc_sys=proc_sys)
    checks.append(check_helper("newuidmap", root))
    checks.append(check_helper("newgidmap", root))
    checks.append(_check_source(root))
    etc = os.path.join(root, "etc")
    files = []
    for kind in ("uid", "gid"):
        p = os.path.join(etc, f"sub{kind}")
        files.append(SubidFile.parse(_read(p) or "", path=p))
    accounts = Accounts.read(root)
    if run_getsubids:
        checks.append(_check_getsubids(root, files[0], files[1], accounts))
    else:
        checks.append(Check("getsubids-agrees", "getsubids agrees with the subuid/subgid "
                            "files", "not-run", "not asked to run getsubids"))
    defs = LoginDefs.parse(_read(os.path.join(etc, "login.defs")) or "")
    checks.append(_check_lint(root, files[0], files[1], accounts, defs))
    checks.extend(_check_mount(p) for p in paths)
    checks.append(_check_kubelet(root, run_getsubids))
    return DoctorReport(root, _is_live(root), tuple(checks))

