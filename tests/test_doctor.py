"""userns.doctor: each check on fixtures, the newuidmap verdict against the real helper,
and the whole report on this host.

The helper oracle: copies of the real ``newuidmap`` (plain, setuid root,
``cap_setuid+ep``, ``cap_setuid+p``) are run as an unprivileged user on a namespace it
created, with a subordinate range from a private ``/etc`` (bind-mounted in a private
mount namespace); the doctor's verdict must say which of them work.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from userns.cli import main
from userns.doctor import check_helper, check_sysctls, diagnose, read_sysctl, subid_source
from userns.mount import Probe

NEWUIDMAP = shutil.which("newuidmap")
SETCAP = shutil.which("setcap")
SETPRIV = shutil.which("setpriv")
UNSHARE = shutil.which("unshare")


def proc_sys(tmp: pathlib.Path, values: dict[str, str]) -> pathlib.Path:
    tree = tmp / "proc" / "sys"
    for name, value in values.items():
        path = tree.joinpath(*name.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    tree.mkdir(parents=True, exist_ok=True)
    return tree


# -- sysctls ----------------------------------------------------------------------------


def test_sysctls_all_good(tmp_path: pathlib.Path) -> None:
    tree = proc_sys(tmp_path, {"user.max_user_namespaces": "15000"})
    checks = {c.name: c for c in check_sysctls(str(tmp_path), proc_sys=str(tree))}
    assert [c.status for c in checks.values()] == ["ok", "ok", "ok"]
    assert "max_user_namespaces = 15000" in checks["max-user-namespaces"].evidence


def test_sysctls_that_stop_user_namespaces(tmp_path: pathlib.Path) -> None:
    proc_sys(tmp_path, {"user.max_user_namespaces": "0",
                        "kernel.unprivileged_userns_clone": "0",
                        "kernel.apparmor_restrict_unprivileged_userns": "1"})
    # <root>/proc/sys is read for a root that has one.
    checks = {c.name: c for c in check_sysctls(str(tmp_path))}
    assert checks["max-user-namespaces"].status == "error"
    assert "user.max_user_namespaces=" in (checks["max-user-namespaces"].fix or "")
    assert checks["unprivileged-userns-clone"].status == "warning"
    assert "kernel.unprivileged_userns_clone=1" in (checks["unprivileged-userns-clone"].fix
                                                     or "")
    assert checks["apparmor-restrict-userns"].status == "warning"
    assert "userns," in (checks["apparmor-restrict-userns"].fix or "")


def test_sysctl_files_decide_for_a_root_without_proc(tmp_path: pathlib.Path) -> None:
    # systemd-sysctl: a name in /etc hides the same name in /usr/lib; files run sorted;
    # /etc/sysctl.conf last.
    (tmp_path / "etc/sysctl.d").mkdir(parents=True)
    (tmp_path / "usr/lib/sysctl.d").mkdir(parents=True)
    (tmp_path / "usr/lib/sysctl.d/50-a.conf").write_text("user.max_user_namespaces = 5\n")
    (tmp_path / "etc/sysctl.d/50-a.conf").write_text("user.max_user_namespaces = 0\n")
    (tmp_path / "usr/lib/sysctl.d/60-b.conf").write_text(
        "# comment\nkernel/unprivileged_userns_clone=0\n")
    value, where = read_sysctl("user.max_user_namespaces", str(tmp_path))
    assert value == "0" and where.endswith("etc/sysctl.d/50-a.conf:1: "
                                           "user.max_user_namespaces = 0")
    assert read_sysctl("kernel.unprivileged_userns_clone", str(tmp_path))[0] == "0"
    (tmp_path / "etc/sysctl.conf").write_text("user.max_user_namespaces=100\n")
    assert read_sysctl("user.max_user_namespaces", str(tmp_path))[0] == "100"
    assert read_sysctl("kernel.apparmor_restrict_unprivileged_userns", str(tmp_path))[0] is None


def test_a_root_with_nothing_is_not_run(tmp_path: pathlib.Path) -> None:
    (c, *_) = check_sysctls(str(tmp_path))
    assert c.status == "not-run"


def test_the_live_host_reads_proc_sys() -> None:
    value, where = read_sysctl("user.max_user_namespaces")
    with open("/proc/sys/user/max_user_namespaces") as fh:
        assert value == fh.read().strip()
    assert where.startswith("/proc/sys/user/max_user_namespaces")


# -- newuidmap / newgidmap ------------------------------------------------------------


def test_missing_helper_is_a_warning(tmp_path: pathlib.Path) -> None:
    c = check_helper("newgidmap", str(tmp_path))
    assert c.status == "warning" and "uidmap" in (c.fix or "")


def test_group_writable_setuid_helper_is_an_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    helper = tmp_path / "usr/bin/newuidmap"
    helper.write_bytes(b"\x7fELF")
    helper.chmod(0o4775)
    if os.stat(helper).st_uid != 0:
        pytest.skip("needs root to own the file")
    c = check_helper("newuidmap", str(tmp_path))
    assert c.status == "error" and "writable" in c.evidence


def _helper_variants(tmp: pathlib.Path) -> dict[str, pathlib.Path]:
    assert NEWUIDMAP is not None and SETCAP is not None
    out = {}
    for name, mode, cap in (("plain", 0o755, None), ("suid", 0o4755, None),
                            ("cap", 0o755, "cap_setuid+ep"), ("capnoe", 0o755, "cap_setuid+p")):
        path = tmp / name
        shutil.copy(NEWUIDMAP, path)
        os.chmod(path, mode)
        if cap:
            subprocess.run([SETCAP, cap, str(path)], check=True)
        out[name] = path
    return out


def _runs_as_nobody(helper: pathlib.Path, etc: pathlib.Path) -> bool:
    """Does ``helper`` map a subordinate range for an unprivileged user?"""
    inner = (f"unshare --user sh -c 'sleep 2' & sleep 0.3; {helper} $! 0 200000 10; "
             "rc=$?; kill $! 2>/dev/null; exit $rc")
    script = ('mount --bind "$1" /etc && exec setpriv --reuid=65534 --regid=65534 '
              '--clear-groups sh -c "$2"')
    assert UNSHARE is not None
    proc = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "--", "sh", "-c",
                           script, "sh", str(etc), inner], capture_output=True, text=True,
                          check=False, timeout=30)
    return proc.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or None in (NEWUIDMAP, SETCAP, SETPRIV, UNSHARE),
                    reason="needs root, newuidmap (uidmap), setcap, setpriv and unshare")
def test_helper_verdict_matches_the_real_newuidmap() -> None:
    # pytest's tmp_path sits in a 0700 directory; nobody must reach the copies.
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="userns-helper-"))
    try:
        tmp_path.chmod(0o755)
        _helper_oracle(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _helper_oracle(tmp_path: pathlib.Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                "nobody:x:65534:65534::/nonexistent:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "subuid").write_text("nobody:200000:65536\n")
    (etc / "subgid").write_text("nobody:200000:65536\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\n")
    if os.path.exists("/etc/ld.so.cache"):
        shutil.copy("/etc/ld.so.cache", etc / "ld.so.cache")
    verdicts = {}
    for name, path in _helper_variants(tmp_path).items():
        verdict = check_helper("newuidmap", path=str(path))
        works = _runs_as_nobody(path, etc)
        verdicts[name] = (verdict.status, works)
        assert (verdict.status == "ok") == works, (name, verdict, works)
    assert verdicts == {"plain": ("error", False), "suid": ("ok", True),
                        "cap": ("ok", True), "capnoe": ("error", False)}
    plain = check_helper("newuidmap", path=str(tmp_path / "plain"))
    assert "neither setuid nor carrying cap_setuid" in plain.evidence
    assert plain.fix is not None and "chmod u+s" in plain.fix


# -- subid source and getsubids ---------------------------------------------------------


def test_subid_source(tmp_path: pathlib.Path) -> None:
    assert subid_source(str(tmp_path))[0] == "files"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nsswitch.conf").write_text("passwd: files\nsubid:   sss files # x\n")
    source, where = subid_source(str(tmp_path))
    assert source == "sss" and where.endswith("nsswitch.conf:2: subid:   sss files # x")
    report = diagnose(str(tmp_path), run_getsubids=False)
    c = report.check("subid-source")
    # No plugin in the root: libsubid says so and falls back to the files.
    assert c.status == "warning" and "falls back to the files" in c.evidence
    lib = tmp_path / "usr/lib/x86_64-linux-gnu/libsubid_sss.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"")
    assert diagnose(str(tmp_path), run_getsubids=False).check("subid-source").status == "info"


def _etc(tmp: pathlib.Path, subuid: str, subgid: str) -> None:
    etc = tmp / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nalice:x:1000:\n")
    (etc / "subuid").write_text(subuid)
    (etc / "subgid").write_text(subgid)
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\n")
    if os.path.exists("/etc/ld.so.cache"):
        shutil.copy("/etc/ld.so.cache", etc / "ld.so.cache")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("getsubids") is None or UNSHARE is None,
                    reason="needs root, getsubids and unshare")
def test_getsubids_agrees_on_a_root(tmp_path: pathlib.Path) -> None:
    _etc(tmp_path, "alice:100000:65536\n1000:300000:10\n", "alice:100000:65536\n")
    # A root without getsubids has nothing that asks libsubid (as k8s check decides).
    c = diagnose(str(tmp_path)).check("getsubids-agrees")
    assert c.status == "not-run" and f"no getsubids under {tmp_path}" in c.evidence
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/getsubids").write_text("#!/bin/sh\n")
    (tmp_path / "usr/bin/getsubids").chmod(0o755)
    c = diagnose(str(tmp_path)).check("getsubids-agrees")
    assert c.status == "ok" and "4 queries" in c.evidence  # 2 owners, -u and -g
    # A source whose plugin is missing: the real getsubids falls back to the files, as
    # the subid-source check says.
    with open(tmp_path / "etc/nsswitch.conf", "a") as fh:
        fh.write("subid: nosuchplugin\n")
    report = diagnose(str(tmp_path))
    assert report.check("getsubids-agrees").status == "ok"
    assert report.check("subid-source").status == "warning"


def test_lint_findings_make_the_check_fail(tmp_path: pathlib.Path) -> None:
    _etc(tmp_path, "alice:100000:65536\nbob:100001:65536\n", "")
    c = diagnose(str(tmp_path), run_getsubids=False).check("subid-lint")
    assert c.status == "error" and "overlap" in c.evidence


# -- mounts, Docker, kubelet, the CLI -------------------------------------------------


def test_idmapped_mount_check_uses_the_probe(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("userns.mount")
    report = diagnose(str(tmp_path), ["/proc"], run_getsubids=False)
    c = report.check("idmapped-mount:/proc")
    assert c.status in ("error", "not-run")
    if c.status == "error":
        assert "proc" in c.evidence


def _docker_root(tmp: pathlib.Path, daemon_json: str | None) -> pathlib.Path:
    _etc(tmp, "dockremap:231072:65536\n", "dockremap:231072:65536\n")
    with open(tmp / "etc/passwd", "a") as fh:
        fh.write("dockremap:x:999:999::/:/bin/false\n")
    with open(tmp / "etc/group", "a") as fh:
        fh.write("dockremap:x:999:\n")
    if daemon_json is not None:
        (tmp / "etc/docker").mkdir()
        (tmp / "etc/docker/daemon.json").write_text(daemon_json)
    return tmp


@pytest.mark.parametrize(("daemon_json", "status", "words"), [
    (None, "info", "Docker is not set up here"),
    ("{}\n", "warning", "userns-remap is OFF"),
    ('{"userns-remap": "default"}\n', "ok", "231072.231072 does not exist yet"),
    ('{\n "userns-remap": "default",\n}\n', "error", "daemon.json:3:1"),
    ('{"userns-remap": "nosuchuser"}\n', "error", "nosuchuser"),
])
def test_docker_remap_check(tmp_path: pathlib.Path, daemon_json: str | None, status: str,
                            words: str) -> None:
    pytest.importorskip("userns.runtimes.daemon")
    root = _docker_root(tmp_path, daemon_json)
    c = diagnose(str(root), run_getsubids=False).check("docker-remap")
    assert c.status == status, c
    assert words in c.evidence
    if status == "warning":
        assert c.fix is not None and '"userns-remap": "default"' in c.fix


def test_docker_data_root_as_dockerd_leaves_it(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("userns.runtimes.daemon")
    root = _docker_root(tmp_path, '{"userns-remap": "default"}\n')
    sub = root / "var/lib/docker/231072.231072"
    sub.mkdir(parents=True)
    for d in (root / "var/lib/docker", sub):
        d.chmod(0o710)
        if os.geteuid() == 0:
            os.chown(d, 0, 231072)
    c = diagnose(str(root), run_getsubids=False).check("docker-remap")
    if os.geteuid() == 0:
        assert (c.status, c.evidence.endswith("as dockerd would leave it")) == ("ok", True), c
    (root / "var/lib/docker").chmod(0o755)
    c = diagnose(str(root), run_getsubids=False).check("docker-remap")
    assert c.status == "warning" and "mode 0755" in c.evidence
    # A directory of the node that does not let the remapped root through: dockerd's error.
    (root / "var").chmod(0o700)
    try:
        c = diagnose(str(root), run_getsubids=False).check("docker-remap")
    finally:
        (root / "var").chmod(0o755)
    assert c.status == "error" and "restricts access to the remapped root" in c.evidence


def test_kubelet_check_on_a_node_root(tmp_path: pathlib.Path) -> None:
    _etc(tmp_path, "kubelet:327680:4294836224\n", "kubelet:327680:4294836224\n")
    with open(tmp_path / "etc/passwd", "a") as fh:
        fh.write("kubelet:x:999:999::/:/bin/false\n")
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/getsubids").write_text("#!/bin/sh\n")
    (tmp_path / "usr/bin/getsubids").chmod(0o755)
    c = diagnose(str(tmp_path), run_getsubids=False).check("kubelet")
    assert c.status == "error" and "past 2^32" in c.evidence


def test_cli_doctor_on_a_fixture(tmp_path: pathlib.Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    proc_sys(tmp_path, {"user.max_user_namespaces": "0"})
    _etc(tmp_path, "", "")
    assert main(["doctor", "--root", str(tmp_path), "--no-getsubids", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["live"] is False
    by = {c["name"]: c for c in doc["checks"]}
    assert by["max-user-namespaces"]["status"] == "error"
    assert set(by["newuidmap"]) == {"name", "title", "status", "evidence", "fix"}


def test_doctor_on_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json", "/tmp"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["live"] is True
    assert code == (0 if doc["ok"] else 1)
    by = {c["name"]: c for c in doc["checks"]}
    with open("/proc/sys/user/max_user_namespaces") as fh:
        live = int(fh.read())
    assert by["max-user-namespaces"]["status"] == ("ok" if live > 0 else "error")
    if NEWUIDMAP is not None:
        st = os.stat(NEWUIDMAP)
        if st.st_mode & 0o4000 and st.st_uid == 0:
            assert by["newuidmap"]["status"] == "ok"
    assert "idmapped-mount:/tmp" in by


# -- the new-user review ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["max-user-namespaces", "unprivileged-userns-clone",
                                  "apparmor-restrict-userns"])
def test_an_unparseable_sysctl_is_unreadable_not_ok(tmp_path: pathlib.Path, name: str) -> None:
    sysctl = {"max-user-namespaces": "user.max_user_namespaces",
              "unprivileged-userns-clone": "kernel.unprivileged_userns_clone",
              "apparmor-restrict-userns": "kernel.apparmor_restrict_unprivileged_userns"}[name]
    values = {"user.max_user_namespaces": "15000", sysctl: "garbage"}
    tree = proc_sys(tmp_path, values)
    c = {c.name: c for c in check_sysctls(str(tmp_path), proc_sys=str(tree))}[name]
    assert c.status == "warning", c
    assert "'garbage' is unreadable" in c.evidence and sysctl in (c.fix or "")
    # Also as a sysctl.d file sets it, for a root without /proc/sys.
    root = tmp_path / "files"
    (root / "etc/sysctl.d").mkdir(parents=True)
    (root / "etc/sysctl.d/50-x.conf").write_text(f"{sysctl} = garbage\n")
    c = {c.name: c for c in check_sysctls(str(root))}[name]
    assert c.status == "warning" and "50-x.conf:1" in c.evidence


def test_fix_texts_name_the_real_root(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "node root"
    _etc(root, "alice:100000:65536\nbob:100001:65536\n", "")
    with open(root / "etc/passwd", "a") as fh:
        fh.write("kubelet:x:999:999::/:/bin/false\n")
    report = diagnose(str(root), run_getsubids=False)
    lint, kubelet = report.check("subid-lint"), report.check("kubelet")
    assert lint.status == "error" and kubelet.status == "error"  # no getsubids in the root
    quoted = f"--root '{root}'"
    for c in (lint, kubelet):
        assert c.fix is not None and "ROOT" not in c.fix and quoted in c.fix, c.fix
    assert lint.fix is not None and lint.fix.startswith(f"userns check {quoted} ")
    # The running host: no --root at all.
    from userns.doctor import _root_option

    assert _root_option("/") == "" and _root_option(str(root)) == f" {quoted}"


def _no_api(text: str | None) -> None:
    for word in ("prepare_volume", "strategy=", "shift_tree"):
        assert word not in (text or ""), text


def test_pseudo_filesystems_are_not_volumes(tmp_path: pathlib.Path) -> None:
    report = diagnose(str(tmp_path), ["/proc", "/sys"], run_getsubids=False)
    for path, fs in (("/proc", "proc"), ("/sys", "sysfs")):
        c = report.check(f"idmapped-mount:{path}")
        assert c.status == "error", c
        assert f"{path} is on {fs}, a kernel pseudo filesystem" in c.evidence
        assert "not a volume" in c.evidence and "shift the tree" not in (c.fix or "")
        assert "pseudo filesystems are not volumes" in (c.fix or "")
        _no_api(c.evidence)
        _no_api(c.fix)


def test_probe_reasons_are_rendered_as_commands() -> None:
    from userns.doctor import _render_probe

    api = ("; shift the tree instead (prepare_volume(strategy='shift'), or "
           "'userns volume --strategy shift')")
    for reason, fs in (("fs-unsupported", "ramfs"), ("not-permitted", "ext4"),
                       ("no-kernel-support", None), ("unsupported-arch", None),
                       ("helper-failed", "ext4"), ("already-idmapped", "ext4")):
        answer = Probe(path="/srv/v", ok=False, reason=reason, message="it failed" + api,
                       fs_type=fs, mount_point="/srv" if fs else None, errno=22)
        status, evidence, fix = _render_probe("/srv/v", answer)
        assert status == "error" and f"[{reason}]" in evidence
        _no_api(evidence)
        _no_api(fix)
        if reason != "already-idmapped":
            assert fix is not None and "userns volume /srv/v --map MAP --strategy shift" in fix
    status, evidence, fix = _render_probe("/srv/v", Probe(
        path="/srv/v", ok=True, reason="ok", message="/elsewhere can be idmapped",
        fs_type="ext4", mount_point="/srv"))
    assert (status, evidence, fix) == ("ok", "/srv/v (ext4, mounted at /srv) can be idmapped",
                                       None)


@pytest.mark.skipif(os.geteuid() != 0 or UNSHARE is None, reason="mounting ramfs needs root "
                    "and unshare")
def test_doctor_on_a_refusing_filesystem_names_the_cli(tmp_path: pathlib.Path) -> None:
    import sys

    assert UNSHARE is not None
    mnt = tmp_path / "ramfs"
    mnt.mkdir()
    code = ("import sys, json; from userns.mount import probe; from userns.cli import main; "
            "print(json.dumps(probe(sys.argv[1]).message)); "
            "sys.exit(main(['doctor', '--no-getsubids', '--json', '--root', sys.argv[2], "
            "sys.argv[1]]))")
    proc = subprocess.run(
        [UNSHARE, "--mount", "--propagation", "private", "sh", "-c",
         'mount -t ramfs none "$1" && shift && exec "$@"', "sh", str(mnt),
         sys.executable, "-c", code, str(mnt), str(tmp_path)],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    _message, rest = proc.stdout.split("\n", 1)
    c = {c["name"]: c for c in json.loads(rest)["checks"]}[f"idmapped-mount:{mnt}"]
    assert c["status"] == "error" and "ramfs" in c["evidence"]
    _no_api(c["evidence"])
    _no_api(c["fix"])
    assert f"userns volume {mnt} --map MAP --strategy shift" in c["fix"]
