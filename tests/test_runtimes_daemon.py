"""Docker as the host configures it: daemon.json, systemd units and drop-ins, sysconfig;
the data root as dockerd's setupDaemonRoot leaves it."""

from __future__ import annotations

import os
import pathlib

import pytest

from userns import ParseError
from userns.runtimes import check_data_root, docker_remap, read_daemon_config
from userns.subid import Accounts

ACC = Accounts.parse("root:x:0:0::/:/bin/sh\ndockremap:x:999:999::/:/bin/false\n",
                     "root:x:0:\ndockremap:x:999:\n")


def write(root: pathlib.Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_nothing_configured_is_remapping_off(tmp_path: pathlib.Path) -> None:
    config = read_daemon_config(tmp_path)
    assert (config.remap, config.data_root, config.unit) == (None, "/var/lib/docker", None)
    write(tmp_path, "etc/docker/daemon.json", '{"userns-remap": ""}')
    assert read_daemon_config(tmp_path).remap is None  # an empty value is off too


def test_daemon_json_with_lines(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "etc/docker/daemon.json",
          '{\n  "log-driver": "json-file",\n  "data-root": "/srv/docker",\n'
          '  "userns-remap": "default"\n}\n')
    config = read_daemon_config(tmp_path)
    assert config.remap == "default" and config.data_root == "/srv/docker"
    assert config.userns_remap is not None and config.userns_remap.where == (
        "etc/docker/daemon.json:4")
    assert config.to_dict()["userns_remap_from"] == {
        "name": "userns-remap", "value": "default", "path": "etc/docker/daemon.json",
        "line": 4, "how": "daemon.json"}


def test_invalid_json_names_line_and_column(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "etc/docker/daemon.json", '{\n  "userns-remap": "default",\n}\n')
    with pytest.raises(ParseError) as info:
        read_daemon_config(tmp_path)
    err = info.value
    assert err.reason == "daemon-json"
    assert err.location is not None and (err.location.line, err.location.column) == (3, 1)
    assert str(err).startswith("etc/docker/daemon.json:3:1: etc/docker/daemon.json is not "
                               "valid JSON")
    write(tmp_path, "etc/docker/daemon.json", '["userns-remap"]')
    with pytest.raises(ParseError, match="must hold a JSON object"):
        read_daemon_config(tmp_path)


def test_systemd_unit_environment_file_and_dropin(tmp_path: pathlib.Path) -> None:
    # Debian's unit reads /etc/default/docker's DOCKER_OPTS.
    write(tmp_path, "lib/systemd/system/docker.service",
          "[Unit]\nDescription=Docker\n[Service]\nEnvironmentFile=-/etc/default/docker\n"
          "ExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS\n")
    write(tmp_path, "etc/default/docker", 'DOCKER_OPTS="--userns-remap=seb --data-root /d"\n')
    config = read_daemon_config(tmp_path)
    assert (config.remap, config.data_root) == ("seb", "/d")
    assert config.unit == "lib/systemd/system/docker.service"
    assert config.exec_start == ("/usr/sbin/dockerd", "-H", "fd://", "--userns-remap=seb",
                                 "--data-root", "/d")
    # A drop-in resets ExecStart and starts dockerd another way.
    write(tmp_path, "etc/systemd/system/docker.service.d/10-remap.conf",
          "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --userns-remap default\n")
    config = read_daemon_config(tmp_path)
    assert (config.remap, config.data_root) == ("default", "/var/lib/docker")
    assert config.userns_remap is not None and config.userns_remap.where == (
        "etc/systemd/system/docker.service.d/10-remap.conf:3")


def test_sysconfig_without_unit(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "etc/sysconfig/docker", "# RHEL\nOPTIONS='--selinux-enabled "
          "--userns-remap=default'\n")
    config = read_daemon_config(tmp_path)
    assert config.remap == "default"
    assert [n.reason for n in config.notes] == ["daemon-no-unit"]


def test_flag_and_file_conflict_is_dockers_refusal(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "etc/docker/daemon.json", '{"userns-remap": "default"}')
    write(tmp_path, "usr/lib/systemd/system/docker.service",
          "[Service]\nExecStart=/usr/bin/dockerd --userns-remap=seb\n")
    config = read_daemon_config(tmp_path)
    conflict = [n for n in config.notes if n.reason == "daemon-config-conflict"]
    assert len(conflict) == 1 and str(conflict[0].severity) == "error"
    assert "specified both as a flag and in the configuration file: userns-remap: " \
           "(from flag: seb, from file: default)" in conflict[0].message


# -- the data root ------------------------------------------------------------------------------



@pytest.mark.skipif(os.geteuid() != 0, reason="chown to the remapped gid needs root")
def test_data_root_as_dockerd_leaves_it(tmp_path: pathlib.Path) -> None:
    import shutil
    import tempfile

    r = docker_remap("dockremap:231072:65536\n", "dockremap:231072:65536\n", "default",
                     accounts=ACC)
    open_dir = pathlib.Path(tempfile.mkdtemp(dir="/tmp"))  # every parent traversable
    try:
        open_dir.chmod(0o755)
        base = open_dir / "docker"
        assert [n.reason for n in check_data_root(base, r)] == ["data-root-missing"] * 2
        sub = base / "231072.231072"
        sub.mkdir(parents=True)
        for p in (base, sub):
            os.chown(p, 0, 231072)
            p.chmod(0o710)
        assert check_data_root(base, r) == []  # as dockerd leaves it
        os.chown(sub, 0, 0)
        sub.chmod(0o755)
        (base / "100000.100000").mkdir()
        reasons = [n.reason for n in check_data_root(base, r)]
        assert reasons == ["data-root-mode", "data-root-owner", "data-root-other-remaps"]
        open_dir.chmod(0o700)  # now a parent blocks the remapped root
        notes = check_data_root(base, r)
        assert [n.reason for n in notes if n.reason == "data-root-blocked"] == [
            "data-root-blocked"]
        assert str(open_dir) in notes[-2].message or str(open_dir) in notes[-1].message
    finally:
        shutil.rmtree(open_dir)


def test_parents_are_walked_up_to_the_root_given(tmp_path: pathlib.Path) -> None:
    """In an image root, the root itself stands for '/': its own mode is not dockerd's."""
    r = docker_remap("dockremap:231072:65536\n", "dockremap:231072:65536\n", "default",
                     accounts=ACC)
    image = tmp_path / "image"
    (image / "var/lib").mkdir(parents=True)
    image.chmod(0o700)  # as pytest's own directories: not the image's business
    notes = check_data_root(image / "var/lib/docker", r, root=image)
    assert [n.reason for n in notes] == ["data-root-missing"] * 2
    (image / "var").chmod(0o700)  # inside the image: dockerd would refuse to start
    notes = check_data_root(image / "var/lib/docker", r, root=image)
    assert [n.reason for n in notes][-1] == "data-root-blocked"
    assert f"{image / 'var'} (mode 0700" in notes[-1].message
