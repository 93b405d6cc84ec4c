"""userns.kubelet: kubelet's pod ID pool, rule by rule, against kubelet's Go source.

The getsubids part is differential: shadow's real ``getsubids`` runs on throwaway roots
(``/etc`` bind-mounted in a private mount namespace, as tests/test_subid_shadow.py does)
and must print what :func:`predict_getsubids` says, and kubelet's reading of both must
give the same pool. kubelet's checks are pinned message by message to the text of
``MakeUserNsManager``, ``record`` and ``parseUserNsFileAndRecord``.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import subprocess
from collections.abc import Mapping

import pytest

from userns.cli import main
from userns.errors import UsernsError
from userns.formats.kubelet import read_kubelet_userns
from userns.kubelet import (
    Pod,
    Pool,
    StartError,
    check_pod,
    check_pool,
    go_quote,
    kubelet_mappings,
    parse_getsubids_output,
    pods_blocking,
    pool_findings,
    pool_keeping,
    predict_getsubids,
    read_node,
    read_pods,
    run_getsubids,
)
from userns.subid import Accounts, SubidFile

from .goprog import GO, build_go

GETSUBIDS = shutil.which("getsubids")
UNSHARE = shutil.which("unshare")
P = "create user namespace manager: "
U32 = 1 << 32


def _can_bind_over_etc() -> bool:
    if os.geteuid() != 0 or UNSHARE is None or GETSUBIDS is None:
        return False
    probe = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "true"],
                           capture_output=True, check=False)
    return probe.returncode == 0


needs_getsubids = pytest.mark.skipif(
    not _can_bind_over_etc(),
    reason="the getsubids differential needs root, getsubids (uidmap) and unshare --mount")


def make_root(tmp: pathlib.Path, subuid: str, subgid: str | None = None, *,
              kubelet_uid: int | None = 999, getsubids: bool = True, getent: bool = True,
              pods: Mapping[str, str | None] | None = None) -> pathlib.Path:
    """A node root: etc files, optionally getsubids and getent, kubelet pod dirs."""
    etc = tmp / "etc"
    etc.mkdir(parents=True)
    passwd = "root:x:0:0::/root:/bin/sh\n"
    group = "root:x:0:\n"
    if kubelet_uid is not None:
        passwd += f"kubelet:x:{kubelet_uid}:{kubelet_uid}::/:/bin/false\n"
        group += f"kubelet:x:{kubelet_uid}:\n"
    for name, text in (("passwd", passwd), ("group", group), ("subuid", subuid),
                       ("subgid", subuid if subgid is None else subgid),
                       ("nsswitch.conf", "passwd: files\ngroup: files\n")):
        (etc / name).write_text(text)
    if os.path.exists("/etc/ld.so.cache"):
        shutil.copy("/etc/ld.so.cache", etc / "ld.so.cache")
    for name, wanted in (("getsubids", getsubids), ("getent", getent)):
        if wanted:
            (tmp / "usr/bin").mkdir(parents=True, exist_ok=True)
            (tmp / "usr/bin" / name).write_text("#!/bin/sh\nexit 0\n")
            (tmp / "usr/bin" / name).chmod(0o755)
    for uid, content in (pods or {}).items():
        d = tmp / "var/lib/kubelet/pods" / uid
        d.mkdir(parents=True)
        if content is not None:
            (d / "userns").write_text(content)
    return tmp


def userns_file(host: int, length: int = 65536, *, gid_host: int | None = None,
                container: int = 0) -> str:
    def one(h: int) -> list[dict[str, int]]:
        return [{"hostId": h, "containerId": container, "length": length}]
    return json.dumps({"uidMappings": one(host),
                       "gidMappings": one(host if gid_host is None else gid_host)},
                      separators=(",", ":"))


# -- getsubids: the prediction against the real binary ------------------------------------


def _random_subid(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(0, 4)):
        owner = rng.choice(["kubelet", "kubelet", "999", "alice", "# kubelet", "dockremap"])
        start = rng.choice([65536, 131072, 100000, 327680, rng.randrange(0, 1 << 32)])
        count = rng.choice([65536, 7208960, 4294836224, 65536 * 110, rng.randrange(1, 1 << 20)])
        lines.append(f"{owner}:{start}:{count}")
    return "".join(line + "\n" for line in lines)


@needs_getsubids
@pytest.mark.slow
def test_predicted_getsubids_and_pool_match_the_real_binary(tmp_path: pathlib.Path) -> None:
    nonempty = 0
    for seed in range(40):
        rng = random.Random(7000 + seed)
        subuid = _random_subid(rng)
        subgid = subuid if rng.random() < 0.6 else _random_subid(rng)
        root = make_root(tmp_path / str(seed), subuid, subgid)
        files = {"uid": SubidFile.parse(subuid), "gid": SubidFile.parse(subgid)}
        acc = Accounts.read(root)
        outs = {}
        for kind in ("uid", "gid"):
            want = predict_getsubids(files[kind], accounts=acc, kind=kind)
            got = run_getsubids(root, kind=kind)
            assert got is not None and got.source == "real"
            assert (got.stdout, got.status) == (want.stdout, want.status), (
                f"seed {seed} {kind}: {subuid!r} {subgid!r} {got.stderr!r}")
            if want.status == 0:
                assert got.stderr == ""
                nonempty += 1
            else:
                assert "Error fetching ranges" in got.stderr
            outs[kind] = (want, got)
        from_prediction = kubelet_mappings(user_exists=True, uid_output=outs["uid"][0],
                                           gid_output=outs["gid"][0])
        from_binary = kubelet_mappings(user_exists=True, uid_output=outs["uid"][1],
                                       gid_output=outs["gid"][1])
        assert from_prediction == from_binary, f"seed {seed}"
    assert nonempty > 10


@needs_getsubids
def test_read_node_runs_the_real_getsubids_and_finds_no_difference(tmp_path: pathlib.Path
                                                                    ) -> None:
    root = make_root(tmp_path, "kubelet:65536:7208960\n")
    node = read_node(root)
    assert [g.source for g in node.real] == ["real", "real"]
    assert [g.stdout for g in node.real] == ["0: kubelet 65536 7208960\n"] * 2
    assert node.pool == Pool(65536, 7208960, source="getsubids")
    assert node.ok and node.error is None
    assert "getsubids-differs" not in {f.reason for f in node.findings}


@needs_getsubids
def test_a_uid_owner_line_is_listed_twice_and_kubelet_refuses_it(tmp_path: pathlib.Path
                                                                  ) -> None:
    # "999:..." is the kubelet account's uid: getsubids lists it besides the name's line.
    root = make_root(tmp_path, "kubelet:65536:7208960\n999:7274496:65536\n")
    node = read_node(root)
    assert node.real[0].stdout.count("\n") == 2
    assert node.error is not None and node.error.reason == "getsubids-lines"
    assert node.error.message == (
        P + 'kubelet mappings: error parsing line "0: kubelet 65536 7208960\\n1: kubelet '
        '7274496 65536\\n": it must contain only one line')


# -- parseGetSubIdsOutput ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [
    ("0: kubelet 65536 2147483648\n", (65536, 2147483648)),
    ("\n\n0: kubelet 65536 65536\n\n", (65536, 65536)),  # Trim "\n" first
    ("0:\tkubelet  65536\t65536", (65536, 65536)),  # strings.Fields
    ("0: kubelet 4294967295 1\n", (4294967295, 1)),
])
def test_parse_getsubids_output_accepts(text: str, want: tuple[int, int]) -> None:
    assert parse_getsubids_output(text) == want


@pytest.mark.parametrize(("text", "reason", "message"), [
    ("", "getsubids-fields", 'invalid line ""'),
    ("0: kubelet 65536\n", "getsubids-fields", 'invalid line "0: kubelet 65536\\n"'),
    ("0: kubelet 65536 65536\n1: kubelet 1 1\n", "getsubids-lines",
     'error parsing line "0: kubelet 65536 65536\\n1: kubelet 1 1\\n": it must contain only '
     "one line"),
    ("0: kubelet 65536 4294967296\n", "getsubids-number",
     'error parsing line "0: kubelet 65536 4294967296\\n": strconv.ParseUint: parsing '
     '"4294967296": value out of range'),
    ("0: kubelet 0x10000 65536\n", "getsubids-number",
     'error parsing line "0: kubelet 0x10000 65536\\n": strconv.ParseUint: parsing '
     '"0x10000": invalid syntax'),
    ("0: kubelet +65536 65536\n", "getsubids-number",
     'error parsing line "0: kubelet +65536 65536\\n": strconv.ParseUint: parsing '
     '"+65536": invalid syntax'),
    # Go's ParseUint reports the overflow it meets before the bad character.
    ("0: kubelet 99999999999x 1\n", "getsubids-number",
     'error parsing line "0: kubelet 99999999999x 1\\n": strconv.ParseUint: parsing '
     '"99999999999x": value out of range'),
])
def test_parse_getsubids_output_refuses_with_kubelets_words(text: str, reason: str,
                                                           message: str) -> None:
    got = parse_getsubids_output(text)
    assert isinstance(got, StartError)
    assert (got.reason, got.message) == (reason, message)


def test_go_quote_escapes_as_strconv_quote() -> None:
    assert go_quote('a"b\\c\td\x01\x7f') == '"a\\"b\\\\c\\td\\x01\\x7f"'
    assert go_quote("é") == '"é"'


# -- getKubeletMappings -------------------------------------------------------------------


def _out(stdout: str, status: int = 0, *args: str) -> object:
    from userns.kubelet import GetsubidsOutput
    return GetsubidsOutput(args or ("kubelet",), stdout, "" if status == 0 else
                           "Error fetching ranges\n", status)


def test_no_kubelet_account_is_the_default_pool() -> None:
    got = kubelet_mappings(user_exists=False, uid_output=None, gid_output=None)
    assert got == Pool(65536, U32 - 65536, 65536, "default")
    got = kubelet_mappings(user_exists=False, uid_output=None, gid_output=None,
                           ids_per_pod=1 << 20)
    assert isinstance(got, Pool) and (got.first, got.length) == (1 << 20, U32 - (1 << 20))


def test_the_getsubids_stages_in_kubelets_order() -> None:
    good = _out("0: kubelet 65536 7208960\n")
    bad = _out("", 1)
    pre = P + "kubelet mappings: "
    cases = [
        (None, None, "getsubids-missing",
         pre + 'exec: "getsubids": executable file not found in $PATH'),
        (bad, bad, "getsubids-failed", pre + 'error retrieving additional ids for user '
         '"kubelet"'),
        (good, bad, "getsubids-failed", pre + 'error retrieving additional gids for user '
         '"kubelet"'),
        (good, _out("0: kubelet 131072 7208960\n"), "subids-mismatch",
         pre + 'mismatched subuids and subgids for user "kubelet"'),
    ]
    for uid, gid, reason, message in cases:
        got = kubelet_mappings(user_exists=True, uid_output=uid, gid_output=gid)  # type: ignore[arg-type]
        assert isinstance(got, StartError)
        assert (got.reason, got.message) == (reason, message)
    assert kubelet_mappings(user_exists=True, uid_output=good,  # type: ignore[arg-type]
                            gid_output=good) == Pool(65536, 7208960)  # type: ignore[arg-type]


def test_ids_per_pod_outside_uint32_is_refused() -> None:
    with pytest.raises(ValueError, match="uint32"):
        check_pool(65536, 65536, ids_per_pod=1 << 32)
    with pytest.raises(ValueError):
        check_pool(65536, 65536, ids_per_pod=0)


# -- MakeUserNsManager's checks -------------------------------------------------------------


@pytest.mark.parametrize(("first", "length", "n", "max_pods", "reason", "message"), [
    (65536, 7208960, 98304, 110, "ids-per-pod",
     "kubelet user namespace length 98304 is not a multiple of 65536"),
    (65537, 7208960, 65536, 110, "first-not-multiple",
     "kubelet user assigned ID 65537 is not a multiple of 65536"),
    # Both "not a multiple" and "too low": kubelet reports the first check.
    (1, 7208960, 65536, 110, "first-not-multiple",
     "kubelet user assigned ID 1 is not a multiple of 65536"),
    (0, 7208960, 65536, 110, "first-too-low",
     "kubelet user assigned ID 0 must be greater or equal to 65536"),
    (65536, 7208960, 131072, 10, "first-not-multiple",
     "kubelet user assigned ID 65536 is not a multiple of 131072"),
    (0, 131072 * 10, 131072, 10, "first-too-low",
     "kubelet user assigned ID 0 must be greater or equal to 131072"),
    (65536, 7208961, 65536, 110, "length-not-multiple",
     "kubelet user assigned IDs length 7208961 is not a multiple of 65536"),
    (65536, 7208960, 65536, 111, "too-few-slots",
     "kubelet user assigned IDs are not enough to support 111 pods"),
    # The default pool with an idsPerPod that does not divide 2^32.
    (196608, U32 - 196608, 196608, 110, "length-not-multiple",
     f"kubelet user assigned IDs length {U32 - 196608} is not a multiple of 196608"),
])
def test_check_pool_rule_by_rule(first: int, length: int, n: int, max_pods: int, reason: str,
                                 message: str) -> None:
    got = check_pool(first, length, ids_per_pod=n, max_pods=max_pods)
    assert got is not None
    assert (got.reason, got.message) == (reason, P + message)


def test_check_pool_passes_at_the_boundaries() -> None:
    assert check_pool(65536, 65536 * 110, max_pods=110) is None
    assert check_pool(1 << 20, (1 << 20) * 8, ids_per_pod=1 << 20, max_pods=8) is None


# -- the PR 141345 example ----------------------------------------------------------------


def test_pr_141345_pool_passes_kubelet_but_is_a_security_finding() -> None:
    pool = Pool(327680, 4294836224)
    assert check_pool(pool.first, pool.length) is None  # kubelet itself lets it through
    assert pool.slots == 65534 and pool.stop == 4295163904
    wrapped = pool.wrapped_slots()
    assert [(s.index, s.first, s.host_first) for s in wrapped] == [
        (65531, U32, 0), (65532, U32 + 65536, 65536), (65533, U32 + 131072, 131072)]
    findings = pool_findings(pool)
    sec = [f for f in findings if f.reason == "pool-wraps"]
    assert len(sec) == 1 and str(sec[0].severity) == "security"
    for text in ("slot 65531 → host 0…65535", "slot 65532 → host 65536…131071",
                 "slot 65533 → host 131072…196607", "host root"):
        assert text in sec[0].message
    refused = [f for f in findings if f.reason == "slot-refused"]
    assert len(refused) == 1 and "slot 65530 (host 4294901760…4294967295)" in refused[0].message


def test_pr_141345_example_through_a_node_root(tmp_path: pathlib.Path) -> None:
    root = make_root(tmp_path, "kubelet:327680:4294836224\n")
    node = read_node(root, run_real=False)
    assert node.ok and not node.secure
    assert main(["k8s", "check", "--root", str(root), "--no-getsubids"]) == 1


def test_a_pool_ending_below_the_top_has_no_top_findings() -> None:
    reasons = {f.reason for f in pool_findings(Pool(65536, U32 - 2 * 65536))}
    assert not reasons & {"pool-wraps", "slot-refused"}
    reasons = {f.reason for f in pool_findings(Pool(65536, U32 - 65536))}
    assert reasons == {"slot-refused"}


def test_overlap_and_covered_accounts() -> None:
    subuid = SubidFile.parse("kubelet:65536:7208960\ndockremap:231072:65536\n999:1:1\n",
                             path="subuid")
    acc = Accounts.parse("root:x:0:0::/:/bin/sh\nkubelet:x:999:999::/:/bin/sh\n"
                         "ldapuser:x:100000:100000::/:/bin/sh\n", "ldap:x:200000:\n")
    fs = pool_findings(Pool(65536, 7208960), subuid=subuid, accounts=acc)
    by = {(f.reason, f.owner) for f in fs}
    assert ("pool-overlap", "dockremap") in by
    assert ("pool-covers-account", "ldapuser") in by
    assert ("pool-covers-group", "ldap") in by
    # The kubelet account's own lines (by name or by uid) are not "other owners".
    assert not any(f.reason == "pool-overlap" and f.owner in ("kubelet", "999") for f in fs)
    over = next(f for f in fs if f.reason == "pool-overlap")
    assert str(over.severity) == "error" and over.lineno == 2 and "65536 IDs" in over.message


# -- pods on disk -------------------------------------------------------------------------


def _pod(tmp: pathlib.Path, content: str | None, uid: str = "p1") -> Pod:
    make_root(tmp, "", pods={uid: content})
    (pod,) = read_pods(tmp / "var/lib/kubelet")
    return pod


@pytest.mark.parametrize(("content", "reason", "message"), [
    ('{"uidMappings":[]}', "pod-invalid",
     "invalid user namespace configuration: no more than one mapping allowed."),
    (json.dumps({"uidMappings": [{"hostId": 65536, "containerId": 0, "length": 65536}] * 2}),
     "pod-invalid", "invalid user namespace configuration: no more than one mapping allowed."),
    ('{"uidMappings":[{"hostId":65536,"containerId":0,"length":65536}]}', "pod-invalid",
     "invalid user namespace configuration: GID and UID mappings should be identical."),
    (userns_file(65536, gid_host=131072), "pod-invalid",
     "invalid user namespace configuration: GID and UID mapping should be identical"),
    (userns_file(65536, container=1), "pod-invalid",
     "invalid user namespace configuration: UID 0 must be mapped"),
    (userns_file(65536, length=65535), "pod-wrong-length", "wrong user namespace length 65535"),
    (userns_file(65537), "pod-wrong-offset", "wrong user namespace offset specified 65537"),
    (userns_file(626982912), "pod-out-of-range", "id 626982912 is out of range"),
    # A forgotten hostId is 0 to Go: below the pool.
    ('{"uidMappings":[{"containerId":0,"length":65536}],'
     '"gidMappings":[{"containerId":0,"length":65536}]}', "pod-out-of-range",
     "id 0 is out of range"),
])
def test_pod_files_checked_as_kubelet_checks_them(tmp_path: pathlib.Path, content: str,
                                                  reason: str, message: str) -> None:
    pod = _pod(tmp_path, content)
    got = check_pod(pod, Pool(65536, 7208960))
    assert got is not None
    assert (got.reason, got.message, got.pod) == (
        reason, P + f'record pod mappings for existing pod "p1": {message}', "p1")


def test_invalid_json_names_the_file_problem(tmp_path: pathlib.Path) -> None:
    pod = _pod(tmp_path, '{"uidMappings": [')
    err = check_pod(pod, Pool(65536, 7208960))
    assert err is not None and err.reason == "pod-invalid-json"
    assert err.message.startswith(
        P + 'record pod mappings for existing pod "p1": invalid user namespace mappings file: ')


def test_go_json_rules_for_pod_files(tmp_path: pathlib.Path) -> None:
    # Keys ignore case, unknown keys are skipped, the last duplicate wins.
    text = ('{"UIDMappings":[{"HOSTID":1,"hostid":131072,"containerId":0,"length":65536,'
            '"x":1}],"gidmappings":[{"hostId":131072,"containerId":0,"length":65536}]}')
    pod = _pod(tmp_path, text)
    assert pod.problem is None and pod.host_first == 131072
    assert check_pod(pod, Pool(65536, 7208960)) is None


def test_pods_without_userns_are_ignored(tmp_path: pathlib.Path) -> None:
    make_root(tmp_path, "", pods={"a": None, "b": "", "c": userns_file(131072)})
    (tmp_path / "var/lib/kubelet/pods/not-a-dir").write_text("x")
    pods = read_pods(tmp_path / "var/lib/kubelet")
    assert [(p.uid, p.has_userns) for p in pods] == [("a", False), ("b", False), ("c", True)]
    assert pods_blocking(pods, Pool(65536, 7208960)) == []
    assert read_pods(tmp_path / "nowhere") == []


def test_two_pods_in_one_slot(tmp_path: pathlib.Path) -> None:
    make_root(tmp_path, "", pods={"a": userns_file(131072), "b": userns_file(131072)})
    pods = read_pods(tmp_path / "var/lib/kubelet")
    ((pod, err),) = pods_blocking(pods, Pool(65536, 7208960))
    assert pod.uid == "b" and err.reason == "pod-slot-taken"
    assert err.message == (P + 'record pod mappings for existing pod "b": range picked for '
                           'pod "b" already taken')


def test_a_pool_change_under_running_pods(tmp_path: pathlib.Path) -> None:
    # kubernetes issue 132966: the documented kubelet:65536:7208960 under pods created
    # with the default pool.
    pods = {"aaa": userns_file(626982912), "bbb": userns_file(131072),
            "ccc": userns_file(4294901760 - 65536 * 3)}
    root = make_root(tmp_path, "kubelet:65536:7208960\n", pods=pods)
    node = read_node(root, run_real=False)
    assert node.pool == Pool(65536, 7208960)
    assert node.error is not None and node.error.pod == "aaa"  # kubelet stops at the first
    assert node.error.message == (P + 'record pod mappings for existing pod "aaa": id '
                                  "626982912 is out of range")
    assert [p.uid for p, _ in node.blocking()] == ["aaa", "ccc"]
    keep = pool_keeping(node.pods, around=node.pool)
    assert isinstance(keep, Pool)
    assert keep.first == 65536 and keep.stop == 4294901760 - 65536 * 2
    assert pods_blocking(node.pods, keep) == []
    assert check_pool(keep.first, keep.length) is None
    # The free slots of the node's own pool: bbb is the one pod inside it.
    assert node.free_slots() == 109


def test_pool_keeping_refuses_a_pod_no_pool_can_hold(tmp_path: pathlib.Path) -> None:
    make_root(tmp_path, "", pods={"odd": userns_file(65536, length=131072)})
    got = pool_keeping(read_pods(tmp_path / "var/lib/kubelet"))
    assert isinstance(got, StartError) and got.reason == "pod-unkeepable"
    assert "wrong user namespace length 131072" in got.message


def test_pool_keeping_meets_max_pods() -> None:
    keep = pool_keeping([], max_pods=110)
    assert isinstance(keep, Pool) and keep.slots == 110 and keep.first == 65536


def test_pod_map_is_an_idmap_pair_through_every_format(tmp_path: pathlib.Path) -> None:
    from userns.formats import FORMATS

    pod = _pod(tmp_path, userns_file(131072))
    pair = pod.pair
    assert pair is not None and pair.root == (131072, 131072)
    for name, fmt in FORMATS.items():
        text = fmt.format(pair)
        assert fmt.parse(text) == pair, name


# -- the node and the CLI -----------------------------------------------------------------


def test_kubelet_account_without_getsubids_stops_kubelet(tmp_path: pathlib.Path) -> None:
    root = make_root(tmp_path, "kubelet:65536:7208960\n", getsubids=False)
    node = read_node(root, run_real=False)
    assert node.pool is None and node.error is not None
    assert node.error.reason == "getsubids-missing"


def test_kubelet_account_without_a_range_stops_kubelet(tmp_path: pathlib.Path) -> None:
    root = make_root(tmp_path, "")
    node = read_node(root, run_real=False)
    assert node.error is not None and node.error.reason == "getsubids-failed"


def test_cli_check_json(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "kubelet:65536:7208960\n")
    assert main(["k8s", "check", "--root", str(root), "--no-getsubids", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["error"] is None
    assert doc["pool"]["first"] == 65536 and doc["pool"]["slots"] == 110
    assert doc["pods"] == [] and doc["findings"] == []
    assert main(["k8s", "check", "--root", str(root), "--no-getsubids", "--json",
                 "--max-pods", "111"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["error"]["message"] == (P + "kubelet user assigned IDs are not enough to "
                                       "support 111 pods")


def test_cli_pods(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "kubelet:65536:7208960\n",
                     pods={"aaa": userns_file(626982912), "bbb": userns_file(131072)})
    assert main(["k8s", "pods", "--root", str(root), "--no-getsubids", "--json",
                 "-f", "lxc"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["blocking"] == ["aaa"]
    assert doc["keeping"]["first"] == 65536 and doc["keeping"]["length"] == 626982912
    assert doc["pods"][1]["map"] == "lxc.idmap = u 0 131072 65536\nlxc.idmap = g 0 131072 65536\n"
    assert main(["k8s", "pods", "--root", str(root), "--no-getsubids",
                 "--pool", "65536:626982912"]) == 0
    text = capsys.readouterr().out
    assert "free slots: 9565 of 9567" in text


def test_cli_check_on_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["k8s", "check", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == (0 if doc["ok"] and not any(f["severity"] == "security"
                                               for f in doc["findings"]) else 1)
    assert doc["pool"] is None or doc["pool"]["length"] % doc["pool"]["ids_per_pod"] == 0 \
        or doc["ok"] is False


# -- the how-to page is what the commands print ---------------------------------------------

HOWTO = pathlib.Path(__file__).resolve().parent.parent / "docs" / "howto" / "kubernetes-node.md"
POD_A = "0b5a6f7e-1c1d-4a5e-9f00-3a1e2d4c5b6a"
POD_B = "7d1c9e2a-52b1-4f38-8c7e-0e6b1a2f3c4d"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_howto_outputs_are_real(tmp_path: pathlib.Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    import re

    blocks = re.findall(r"^```text\n(.*?)^```$", HOWTO.read_text(encoding="utf-8"),
                        re.MULTILINE | re.DOTALL)
    assert len(blocks) == 6
    real = _can_bind_over_etc()

    def want(block: str) -> str:
        # Without a real getsubids to run, the 'real' lines cannot appear.
        return "".join(line for line in block.splitlines(keepends=True)
                       if real or not line.startswith("real "))

    root = make_root(tmp_path / "node", "", getsubids=False)
    if GETSUBIDS is not None:
        (root / "usr/bin/getsubids").symlink_to(GETSUBIDS)
    else:
        (root / "usr/bin/getsubids").write_text("#!/bin/sh\n")
        (root / "usr/bin/getsubids").chmod(0o755)
    code, out = _cli(capsys, "allocate", "kubelet", "--root", str(root), "--count", "7208960",
                     "--align", "65536", "--write")
    assert code == 0 and out.startswith(blocks[0])
    code, out = _cli(capsys, "k8s", "check", "--root", str(root))
    assert (code, out) == (0, want(blocks[1]))
    for uid, host in ((POD_A, 626982912), (POD_B, 196608)):
        d = root / "var/lib/kubelet/pods" / uid
        d.mkdir(parents=True)
        (d / "userns").write_text(userns_file(host))
    code, out = _cli(capsys, "k8s", "check", "--root", str(root))
    assert (code, out) == (1, want(blocks[2]))
    code, out = _cli(capsys, "k8s", "pods", "--root", str(root))
    assert (code, out) == (1, blocks[3])
    code, out = _cli(capsys, "k8s", "pods", "--root", str(root), "--pool", "131072:627048448")
    assert (code, out) == (0, blocks[4])
    pr = make_root(tmp_path / "pr", "kubelet:327680:4294836224\n")
    code, out = _cli(capsys, "k8s", "check", "--root", str(pr), "--no-getsubids")
    assert (code, out) == (1, blocks[5])


@pytest.mark.parametrize("page", ["reference/kubelet.md", "reference/doctor.md"])
def test_reference_examples_run(page: str) -> None:
    import doctest
    import re

    path = HOWTO.parent.parent / page
    blocks = re.findall(r"^```pycon\n(.*?)^```$", path.read_text(encoding="utf-8"),
                        re.MULTILINE | re.DOTALL)
    assert blocks
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner()
    globs: dict[str, object] = {}
    for i, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, globs, f"{page}[{i}]", str(path), 0)
        report: list[str] = []
        result = runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs
        assert result.attempted > 0
        assert result.failed == 0, f"{page} block {i} failed\n" + "".join(report)


def test_missing_getsubids_modes_and_missing_getent(tmp_path: pathlib.Path) -> None:
    # Released kubelets stop; with the fix proposed in PR 141345 they use the default pool.
    got = kubelet_mappings(user_exists=True, uid_output=None, gid_output=None,
                           missing_getsubids="default")
    assert got == Pool.default()
    root = make_root(tmp_path, "kubelet:131072:7208960\n", getent=False)
    node = read_node(root, run_real=False)
    (f,) = [f for f in node.findings if f.reason == "getent-missing"]
    assert str(f.severity) == "warning" and "141970" in f.message
    assert node.ok  # kubelet itself still starts: the finding is about which pool


# -- Go itself as the oracle: strconv, %q, strings.Fields, encoding/json ------------------


# The steps of kubelet's parseGetSubIdsOutput and of its userns file decoding, written
# against Go's standard library so that Go's own strconv, fmt %q, strings.Fields and
# encoding/json give the answers. Input: hex-encoded cases, one per line.
GO_PROGRAM = """\
package main

import (
\t"bufio"
\t"encoding/hex"
\t"encoding/json"
\t"fmt"
\t"os"
\t"strconv"
\t"strings"
)

type mapping struct {
\tHostId      uint32 `json:"hostId"`
\tContainerId uint32 `json:"containerId"`
\tLength      uint32 `json:"length"`
}

type usernsFile struct {
\tUIDMappings []mapping `json:"uidMappings"`
\tGIDMappings []mapping `json:"gidMappings"`
}

func subids(input string) string {
\tlines := strings.Split(strings.Trim(input, "\\n"), "\\n")
\tif len(lines) != 1 {
\t\treturn fmt.Sprintf("error parsing line %q: it must contain only one line", input)
\t}
\tparts := strings.Fields(lines[0])
\tif len(parts) != 4 {
\t\treturn fmt.Sprintf("invalid line %q", input)
\t}
\tvar got [2]uint64
\tfor i, p := range parts[2:] {
\t\tv, err := strconv.ParseUint(p, 10, 32)
\t\tif err != nil {
\t\t\treturn fmt.Errorf("error parsing line %q: %w", input, err).Error()
\t\t}
\t\tgot[i] = v
\t}
\treturn fmt.Sprintf("ok %d %d", got[0], got[1])
}

func userns(input string) string {
\tvar f usernsFile
\tif err := json.Unmarshal([]byte(input), &f); err != nil {
\t\treturn "error"
\t}
\tout := "ok"
\tfor _, list := range [][]mapping{f.UIDMappings, f.GIDMappings} {
\t\tout += " |"
\t\tfor _, m := range list {
\t\t\tout += fmt.Sprintf(" %d,%d,%d", m.HostId, m.ContainerId, m.Length)
\t\t}
\t}
\treturn out
}

func main() {
\tsc := bufio.NewScanner(os.Stdin)
\tsc.Buffer(make([]byte, 1<<20), 1<<20)
\tfor sc.Scan() {
\t\tkind, data, _ := strings.Cut(sc.Text(), " ")
\t\traw, _ := hex.DecodeString(data)
\t\tvar answer string
\t\tif kind == "subids" {
\t\t\tanswer = subids(string(raw))
\t\t} else {
\t\t\tanswer = userns(string(raw))
\t\t}
\t\tfmt.Println(hex.EncodeToString([]byte(answer)))
\t}
}
"""


@pytest.fixture(scope="module")
def go_oracle(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    if GO is None:
        pytest.skip("needs Go (Debian golang-go) for the standard-library oracle")
    return build_go(tmp_path_factory, "oracle", GO_PROGRAM)


def _ask_go(oracle: pathlib.Path, cases: list[tuple[str, str]]) -> list[str]:
    data = "".join(f"{kind} {text.encode('utf-8', 'surrogateescape').hex()}\n"
                   for kind, text in cases)
    out = subprocess.run([str(oracle)], input=data, capture_output=True, text=True,
                         check=True).stdout
    return [bytes.fromhex(line).decode("utf-8", "surrogateescape")
            for line in out.splitlines()]


SUBID_TOKENS = ["0", ":", " ", "kubelet", "65536", "7208960", "4294967295", "4294967296",
                "99999999999", "x", "\n", "\n", "\t", "\u00a0", "\u2003", "\x85", "\x1c",
                "+1", "-1", "1_0", "0x10", '"', "\\", "é", "\x01", "\x7f", "010", ""]


def _subid_case(rng: random.Random) -> str:
    if rng.random() < 0.4:
        start = rng.choice(["65536", "131072", "4294967295", "4294967296", "1x", ""])
        count = rng.choice(["7208960", "0", "99999999999x", "+5", "65536"])
        sep = rng.choice([" ", "\t", "  ", "\u00a0"])
        return f"0:{sep}kubelet{sep}{start}{sep}{count}" + rng.choice(["\n", "", "\n\n"])
    return "".join(rng.choice(SUBID_TOKENS) for _ in range(rng.randint(0, 10)))


def test_getsubids_output_reading_matches_go(go_oracle: pathlib.Path) -> None:
    rng = random.Random(4242)
    cases = [_subid_case(rng) for _ in range(3000)]
    answers = _ask_go(go_oracle, [("subids", c) for c in cases])
    accepted = 0
    for text, go in zip(cases, answers):
        got = parse_getsubids_output(text)
        mine = got.message if isinstance(got, StartError) else f"ok {got[0]} {got[1]}"
        assert mine == go, repr(text)
        accepted += not isinstance(got, StartError)
    assert accepted > 100


USERNS_WORDS = ['{', '}', '[', ']', ',', ':', 'null', 'true', '"x"', '0', '1', '65536',
                '-1', '-0', '1.0', '1e3', '4294967295', '4294967296', '"uidMappings"',
                '"gidMappings"', '"UIDMAPPINGS"', '"hostId"', '"HOSTID"', '"hostid"',
                '"containerId"', '"length"', '"Length"', ' ']


def _userns_case(rng: random.Random) -> str:
    if rng.random() < 0.6:
        def obj() -> str:
            keys = rng.sample(["hostId", "HostID", "containerId", "length", "LENGTH",
                               "other"], rng.randint(0, 5))
            vals = [rng.choice(["0", "65536", "131072", "-1", "-0", "1.5", "1e2", "null",
                                '"1"', "4294967296", "true", "[]"]) for _ in keys]
            return "{" + ",".join(f'"{k}":{v}' for k, v in zip(keys, vals)) + "}"
        lists = rng.sample(["uidMappings", "gidMappings", "UidMappings", "x"],
                           rng.randint(0, 3))
        body = ",".join(f'"{k}":' + rng.choice(
            ["null", "[" + ",".join(obj() for _ in range(rng.randint(0, 2))) + "]",
             "{}", '"s"']) for k in lists)
        return "{" + body + "}"
    return "".join(rng.choice(USERNS_WORDS) for _ in range(rng.randint(0, 12)))


def test_userns_file_reading_matches_go(go_oracle: pathlib.Path) -> None:
    rng = random.Random(2424)
    pinned = [  # Go's quirks: a repeated list decodes into the first one's elements
        '{"uidMappings":[{"hostId":5}],"uidMappings":[{"length":7}]}',
        '{"uidMappings":[{"hostId":5},{"hostId":6}],"uidMappings":[{"length":7}],'
        '"uidMappings":[{},{},{}]}',
        '{"uidMappings":[{"hostId":1},{"hostId":2},{"hostId":3},{"hostId":4},'
        '{"hostId":5}],"uidMappings":[{},{}],"uidMappings":[{},{},{},{},{},{}]}',
        '{"uidMappings":[{"hostId":5,"hostId":null}]}',  # null changes nothing
        '{"uidMappings":[{"ho\u017ftId":5}]}',  # the long s folds to s
        '{"uidMappings":[{"hostId":-0}]}', '{"uidMappings":[1,{"hostId":2}]}',
    ]
    cases = pinned + [_userns_case(rng) for _ in range(3000)]
    answers = _ask_go(go_oracle, [("userns", c) for c in cases])
    decoded = 0
    for text, go in zip(cases, answers):
        try:
            f = read_kubelet_userns(text)
        except UsernsError:
            mine = "error"
        else:
            mine = "ok" + "".join(
                " |" + "".join(f" {m.host_id},{m.container_id},{m.length}" for m in maps)
                for maps in (f.uid, f.gid))
            decoded += 1
        assert mine == go, repr(text)
    assert decoded > 300


def test_wrapped_slots_count_as_the_host_ids_they_hand_out() -> None:
    pool = Pool(327680, 4294836224)
    ids = pool.host_ids()
    assert 0 in ids and 196607 in ids and 196608 not in ids  # slots 65531…65533
    assert 327680 in ids and 4294967294 in ids
    acc = Accounts.parse("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n")
    reasons = {(f.reason, f.owner) for f in pool_findings(pool, accounts=acc)}
    assert ("pool-covers-account", "root") in reasons
    assert ("pool-covers-group", "root") in reasons
    assert pool_findings(Pool(327680, 65536 * 110), accounts=acc) == []


# -- the new-user review: every answer agrees with what kubelet does ----------------------


def test_pool_keeping_refuses_two_pods_on_one_slot(tmp_path: pathlib.Path) -> None:
    root = make_root(tmp_path, "kubelet:65536:655360\n",
                     pods={"pod-a": userns_file(131072), "pod-b": userns_file(131072)})
    pods = read_pods(root / "var/lib/kubelet")
    got = pool_keeping(pods, around=Pool(65536, 7208960))
    assert isinstance(got, StartError) and got.reason == "pod-slot-shared"
    assert got.pod == "pod-b" and '"pod-a" and "pod-b"' in got.message
    # And truly: under every pool that holds the slot, kubelet refuses the second pod.
    for pool in (Pool(65536, 7208960), Pool(131072, 65536 * 110), Pool(65536, 65536 * 9000)):
        assert [(p.uid, e.reason) for p, e in pods_blocking(pods, pool)] == [
            ("pod-b", "pod-slot-taken")]


def test_cli_pods_says_no_pool_keeps_a_shared_slot(tmp_path: pathlib.Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "kubelet:65536:655360\n",
                     pods={"pod-a": userns_file(131072), "pod-b": userns_file(131072)})
    code, out = _cli(capsys, "k8s", "pods", "--root", str(root), "--no-getsubids",
                     "--pool", "65536:7208960")
    assert code == 1
    assert "a pool that keeps every pod" not in out
    assert 'no pool keeps every pod' in out and '"pod-a" and "pod-b" share the slot' in out


def test_cli_pods_without_a_pool_refuses_an_invalid_pod(tmp_path: pathlib.Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    root = make_root(tmp_path, "kubelet:65536:655360\n", getsubids=False,
                     pods={"pod-c": userns_file(131072), "pod-d": "{bad"})
    code, out = _cli(capsys, "k8s", "pods", "--root", str(root), "--no-getsubids")
    assert code == 1
    assert "pod-c: 131072…196607  ok" in out
    assert 'pod-d: no mapping  BLOCKS: ' + P + 'record pod mappings for existing pod ' \
        '"pod-d": invalid user namespace mappings file: invalid JSON' in out
    code, out = _cli(capsys, "k8s", "pods", "--root", str(root), "--no-getsubids", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["pool"] is None and doc["blocking"] == ["pod-d"]
    d = doc["pods"][1]
    assert d["ok"] is False and d["error"]["reason"] == "pod-invalid-json"


@needs_getsubids
def test_real_getsubids_runs_only_when_the_root_has_one(tmp_path: pathlib.Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    bare = make_root(tmp_path / "bare", "kubelet:65536:655360\n", getsubids=False)
    node = read_node(bare)
    assert node.real == () and node.error is not None
    assert node.error.reason == "getsubids-missing"
    code, out = _cli(capsys, "k8s", "check", "--root", str(bare))
    assert code == 1 and "\nreal " not in "\n" + out and "executable file not found" in out
    has = make_root(tmp_path / "has", "kubelet:65536:7208960\n")
    node = read_node(has)
    assert [g.source for g in node.real] == ["real", "real"]
    assert node.error is None and node.pool == Pool(65536, 7208960)


@pytest.mark.parametrize("pool", ["131072:0", "131072:", ":100", "131072", "1e5:65536",
                                  "-65536:65536", "\u0661:65536"])
def test_cli_pods_pool_is_a_usage_error(tmp_path: pathlib.Path, pool: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "kubelet:65536:7208960\n")
    assert main(["k8s", "pods", "--root", str(root), "--no-getsubids", f"--pool={pool}"]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "pool:" not in captured.out
    assert "FIRST:LENGTH" in err or "LENGTH must be at least 1" in err


def test_cli_pods_text_is_capped_json_is_not(tmp_path: pathlib.Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pods = {f"pod-{i:02}": userns_file(65536 * (i + 1)) for i in range(30)}
    root = make_root(tmp_path, "kubelet:65536:7208960\n", pods=pods)
    code, out = _cli(capsys, "k8s", "pods", "--root", str(root), "--no-getsubids")
    assert code == 0
    listed = [line for line in out.splitlines() if line.startswith("pod-")]
    assert len(listed) == 20 and listed[-1].startswith("pod-19:")
    assert "… and 10 more" in out.splitlines()
    code, out = _cli(capsys, "k8s", "pods", "--root", str(root), "--no-getsubids", "--json")
    assert len(json.loads(out)["pods"]) == 30


def test_cli_pods_format_says_no_map(tmp_path: pathlib.Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "kubelet:65536:7208960\n",
                     pods={"pod-c": userns_file(131072), "pod-d": "{bad"})
    code, out = _cli(capsys, "k8s", "pods", "--root", str(root), "--no-getsubids", "-f", "lxc")
    assert code == 1  # pod-d's file stops kubelet
    lines = out.splitlines()
    assert all(line.strip() for line in lines), out
    i = next(i for i, line in enumerate(lines) if line.startswith("pod-d:"))
    assert lines[i + 1] == "  no map"
    assert lines[2:4] == ["  lxc.idmap = u 0 131072 65536", "  lxc.idmap = g 0 131072 65536"]


def test_cli_check_findings_text_is_capped(tmp_path: pathlib.Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "kubelet:65536:7208960\n")
    with open(root / "etc/passwd", "a") as fh:
        fh.writelines(f"u{i}:x:{70000 + i}:{70000 + i}::/:/bin/false\n" for i in range(25))
    code, out = _cli(capsys, "k8s", "check", "--root", str(root), "--no-getsubids")
    assert code == 1
    listed = [line for line in out.splitlines() if line.startswith("security: ")]
    assert len(listed) == 20 and "… and 5 more" in out.splitlines()
    code, out = _cli(capsys, "k8s", "check", "--root", str(root), "--no-getsubids", "--json")
    assert len([f for f in json.loads(out)["findings"]
                if f["reason"] == "pool-covers-account"]) == 25
