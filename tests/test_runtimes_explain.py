"""explain tells the truth: every annotation is derived from the map, and tested against
a map that makes it false; any security finding makes ``userns explain`` exit 1."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib

import pytest

from userns.cli import main
from userns.runtimes import Explanation, explain_docker, read_daemon_config
from userns.subid import Accounts

ACC = Accounts.parse("root:x:0:0::/:/bin/sh\nseb:x:1000:1000::/:/bin/sh\n"
                     "dockremap:x:999:999::/:/bin/false\n",
                     "root:x:0:\nseb:x:1000:\ndockremap:x:999:\n")


def explain(text: str, remap: str = "seb") -> Explanation:
    return explain_docker(text, text, remap, accounts=ACC)


def views(e: Explanation) -> dict[int, str | None]:
    return {v.host: v.note for v in e.host_views}


# -- the host-root sentence ---------------------------------------------------------------------


def test_host_root_unmapped() -> None:
    e = explain("seb:100000:65536\n")
    assert e.host_root.startswith("host root (uid 0, gid 0) is not mapped: its files show as "
                                  "65534/65534")
    assert not e.host_root_is_container_root and e.ok
    assert views(e)[0] == "host root: not mapped, its files show as nobody inside"


def test_host_root_is_container_root_is_said_loudly() -> None:
    """The issue's map: seb:0:65536 used to print '(host root: its files show as nobody
    inside)' and exit 0."""
    e = explain("seb:0:65536\n")
    assert e.host_root.startswith("HOST ROOT IS CONTAINER ROOT: host uid 0 is container uid 0 "
                                  "and host gid 0 is container gid 0 (subuid line 1)")
    assert e.host_root_is_container_root and not e.ok
    assert views(e)[0] == "HOST ROOT IS CONTAINER ROOT"
    assert any(s.startswith("host-root-is-container-root: ") for s in e.security)


def test_host_root_mapped_elsewhere() -> None:
    e = explain("seb:100000:5\nseb:0:1\nseb:200000:65536\n")
    assert e.host_root.startswith("host root is mapped: host uid 0 is container uid 5 and host "
                                  "gid 0 is container gid 5 (subuid line 2)")
    assert not e.host_root_is_container_root and not e.ok
    assert views(e)[0] == "host root: MAPPED into the container"


# -- the host rows ----------------------------------------------------------------------------


def test_row_notes_follow_the_map() -> None:
    e = explain("seb:100000:65536\n")
    assert views(e)[1000] == "not mapped: nobody/nogroup inside"
    assert views(e)[100000] == "container root"
    # seb's own uid as container root: its row says so, and it is no longer "nobody".
    e = explain("seb:1000:1\nseb:100000:65536\n")
    assert views(e)[1000] == "container root"
    # A host ID mapped to container 65534 is mapped, not "nobody", though it shows as 65534.
    e = explain("seb:100000:65534\nseb:1000:1\nseb:300000:10\n")
    row = next(v for v in e.host_views if v.host == 1000)
    assert (row.inside_uid, row.uid_mapped, row.note) == (65534, True, None)
    # Half-mapped: the uid is mapped, the gid not.
    e = explain_docker("seb:1000:1\nseb:100000:65536\n", "seb:100000:65536\n", "seb",
                       accounts=ACC)
    assert views(e)[1000] == "container root's uid"
    assert next(v for v in e.host_views if v.host == 1000).gid_mapped is False


def test_map_headers_name_the_lines_used_or_the_range_dockerd_adds() -> None:
    no_dockremap = Accounts.parse("root:x:0:0::/:/bin/sh\n", "root:x:0:\n")
    created = explain_docker("", "", "default", accounts=no_dockremap)
    assert created.docker is not None and created.docker.uid_lines == ()
    code, out, _ = cli_root({"subuid": "dockremap:231072:65536\n"}, "--user", "default")
    assert code == 0 and "uid map (subuid line 1):" in out
    code, out, _ = cli_root({"subuid": "", "passwd": "root:x:0:0::/:/bin/sh\n",
                             "group": "root:x:0:\n"}, "--user", "default")
    assert "uid map (a range dockerd would add to /etc/subuid):" in out


def test_translations_say_unmapped() -> None:
    e = explain("seb:100000:100\n")
    t = {x.container: (x.host_uid, x.host_gid) for x in e.translations}
    assert t[33] == (100033, 100033) and t[1000] == (None, None)
    e = explain("seb:100000:65536\n")
    assert {x.container: x.host_uid for x in e.translations}[1000] == 101000


# -- the CLI --------------------------------------------------------------------------------------


def cli_root(files: dict[str, str], *argv: str,
             dirs: dict[str, int] | None = None) -> tuple[int, str, str]:
    """``userns explain --root R`` on a root holding ``files`` under etc/ and ``dirs``
    (relative path: mode)."""
    import tempfile

    root = pathlib.Path(tempfile.mkdtemp())
    for rel, mode in (dirs or {}).items():
        (root / rel).mkdir(parents=True)
        (root / rel).chmod(mode)
    etc = root / "etc"
    etc.mkdir()
    base = {"passwd": "root:x:0:0::/:/bin/sh\nseb:x:1000:1000::/:/bin/sh\n"
                      "dockremap:x:999:999::/:/bin/false\n",
            "group": "root:x:0:\nseb:x:1000:\ndockremap:x:999:\n"}
    base.update(files)
    if "subgid" not in base and "subuid" in base:
        base["subgid"] = base["subuid"]
    for name, text in base.items():
        path = etc / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["explain", "--root", str(root), *argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_exits_1_on_any_security_finding() -> None:
    code, out, _ = cli_root({"subuid": "seb:0:65536\n"}, "--user", "seb")
    assert code == 1
    assert "!!! HOST ROOT IS CONTAINER ROOT" in out
    assert "(host root: its files show as nobody inside)" not in out
    assert "security finding(s): exit status 1" in out
    code, out, _ = cli_root({"subuid": "seb:0:65536\n"}, "--user", "seb", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["host_root"]["is_container_root"]
    assert doc["security"]
    code, out, _ = cli_root({"subuid": "seb:100000:65536\n"}, "--user", "seb")
    assert code == 0 and "security finding" not in out


def test_cli_reads_the_daemon_config_and_says_remapping_off() -> None:
    code, out, _ = cli_root({"subuid": "dockremap:231072:65536\n"})
    assert code == 1
    assert out.startswith("Docker userns-remap: OFF (main rules)\n")
    assert "container root IS HOST ROOT" in out and "-v /etc:/root/etc" in out
    code, out, _ = cli_root({"subuid": "dockremap:231072:65536\n",
                             "docker/daemon.json": '{\n "userns-remap": "default"\n}\n'})
    assert code == 0, out
    assert "userns-remap from etc/docker/daemon.json:2" in out
    code, out, _ = cli_root({"subuid": "dockremap:231072:65536\n",
                             "docker/daemon.json": '{\n "userns-remap": "default",\n}\n',
                             }, "--json")
    doc = json.loads(out)
    assert code == 1 and doc["error"]["reason"] == "daemon-json"
    assert (doc["error"]["line"], doc["error"]["column"]) == (3, 1)


def test_cli_docker_version_changes_the_map() -> None:
    files = {"subuid": "seb:9000000:20\n1000:20000000:65536\n"}
    code, out, _ = cli_root(files, "--user", "seb", "--docker-version", "20.10", "--json")
    assert json.loads(out)["docker"]["uid_map"] == [[0, 20000000, 65536]]
    assert json.loads(out)["docker_version"]["version"] == "20.10"
    code, out, _ = cli_root(files, "--user", "seb", "--docker-version", "main", "--json")
    assert json.loads(out)["docker"]["uid_map"] == [[0, 9000000, 20], [20, 20000000, 65536]]
    code, _, err = cli_root(files, "--user", "seb", "--docker-version", "latest")
    assert code == 1 and "[docker-version]" in err


def test_explain_from_config_object(tmp_path: pathlib.Path) -> None:
    (tmp_path / "etc/docker").mkdir(parents=True)
    (tmp_path / "etc/docker/daemon.json").write_text(
        '{"userns-remap": "seb", "data-root": "/srv/d"}')
    config = read_daemon_config(tmp_path)
    e = explain_docker("seb:100000:65536\n", "seb:100000:65536\n", config.remap,
                       accounts=ACC, config=config)
    assert e.data_root_path == "/srv/d/100000.100000"
    config_dict = e.to_dict()["config"]
    assert isinstance(config_dict, dict) and config_dict["data_root"] == "/srv/d"


@pytest.mark.parametrize("text", ["seb:100000:65536\n", "seb:0:65536\n", ""])
def test_json_and_ok_agree(text: str) -> None:
    e = explain(text)
    d = e.to_dict()
    docker = d["docker"]
    assert isinstance(docker, dict)
    assert d["ok"] == e.ok == (not d["security"] and docker["ok"])


def test_comparison_names_the_docker_rules_it_uses() -> None:
    files = {"subuid": "seb:9000000:20\n1000:20000000:65536\n"}
    code, out, _ = cli_root(files, "--user", "seb", "--docker-version", "20.10")
    assert code == 0
    flat = " ".join(out.split())  # the note is wrapped at 100 columns
    assert "uses moby main's Docker rules, which give another map than dockerd 20.10" in flat
    code, out, _ = cli_root(files, "--user", "seb", "--docker-version", "main")
    assert code == 0 and "uses moby main's Docker rules" not in out


def test_a_data_root_dockerd_refuses_fails_explain() -> None:
    files = {"subuid": "dockremap:231072:65536\n",
             "docker/daemon.json": '{"userns-remap": "default", "data-root": "/srv/d"}'}
    code, out, _ = cli_root(files)
    assert code == 0 and "does not exist yet: dockerd creates it" in out
    code, out, _ = cli_root(files, dirs={"srv": 0o700})
    assert code == 1
    assert "does not let the remapped root 231072:231072 through" in " ".join(out.split())


def test_a_refused_remap_value_is_not_compared_with_the_other_runtimes() -> None:
    # dockerd refuses the group: no container starts, so no runtime comparison may say
    # "the same maps" or name a docker map.
    e = explain("seb:100000:65536\n", remap="seb:nosuchgroup")
    assert e.docker is not None and e.docker.pair is None and not e.ok
    assert e.comparison is None
    assert e.comparison_error == "dockerd refuses --userns-remap=seb:nosuchgroup"
    # A remap value dockerd takes is still compared.
    assert explain("seb:100000:65536\n", remap="seb:seb").comparison is not None
