"""Differential tests: userns.subid against the real shadow 4.13 tools.

``useradd --prefix DIR`` and ``usermod --prefix DIR -v/-V`` (Debian ``passwd``) run on
random prefix directories; the prediction must match their exit status and the exact
bytes they leave in ``DIR/etc/subuid`` and ``subgid``. ``getsubids`` (Debian ``uidmap``)
reads only the real ``/etc``, so it runs in a private mount namespace with a temporary
directory bind-mounted over ``/etc``; the machine's own files are never touched.

Scenarios are drawn from seeded ``random.Random`` generators, so a failure names its
seed and replays exactly.
"""

from __future__ import annotations

import os
import pathlib
import random
import shutil
import subprocess

import pytest

from userns import IDRange
from userns.logindefs import LoginDefs
from userns.subid import (
    Accounts,
    AllocationError,
    SubidFile,
    allocate,
    shadow_list_owner_ranges,
    shadow_useradd,
    shadow_userdel,
    shadow_usermod,
)

USERADD = shutil.which("useradd") or (
    "/usr/sbin/useradd" if os.path.exists("/usr/sbin/useradd") else None)
USERMOD = shutil.which("usermod") or (
    "/usr/sbin/usermod" if os.path.exists("/usr/sbin/usermod") else None)
USERDEL = shutil.which("userdel") or (
    "/usr/sbin/userdel" if os.path.exists("/usr/sbin/userdel") else None)
GETSUBIDS = shutil.which("getsubids")
UNSHARE = shutil.which("unshare")
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="useradd/usermod --prefix need root")
needs_useradd = pytest.mark.skipif(USERADD is None, reason="useradd (Debian passwd) missing")
needs_usermod = pytest.mark.skipif(USERMOD is None, reason="usermod (Debian passwd) missing")

BATCHES = 8
PER_BATCH = 25
OWNERS = ["alice", "bob", "carol", "1000", "1001", "dockremap", "# alice", "zed"]


# -- random inputs --------------------------------------------------------------------


def _number(rng: random.Random, value: int) -> str:
    roll = rng.random()
    if roll < 0.04:
        return hex(value)
    if roll < 0.07:
        return "0" + format(value, "o")
    if roll < 0.09:
        return " " + str(value)
    return str(value)


def random_subid_text(rng: random.Random, lo: int, hi: int, count: int) -> str:  # noqa: C901 (a generator of every line shape, one branch each)
    """A messy subid file with entries around ``lo … hi``."""
    lines: list[str] = []
    hi = max(hi, lo)
    span = max(hi - lo, 1)
    for _ in range(rng.randint(0, 14)):
        roll = rng.random()
        owner = rng.choice(OWNERS)
        size = rng.choice([1, 10, count, count, count, max(count // 2, 1), count * 2,
                           rng.randint(1, 3 * count)])
        start = rng.randint(max(lo - span // 4, 0), hi + span // 4)
        if rng.random() < 0.3:  # snap to block boundaries: touching and exact fits
            start = lo + rng.randint(0, max(span // max(count, 1), 1)) * count
        if roll < 0.62:
            lines.append(f"{owner}:{_number(rng, start)}:{_number(rng, size)}")
        elif roll < 0.68:
            lines.append(f"# {owner}:{start}:{size}")
        elif roll < 0.73:
            lines.append("# a comment")
        elif roll < 0.77:
            lines.append("")
        elif roll < 0.80:
            lines.append("garbage without colons")
        elif roll < 0.83:
            lines.append(f"{owner}:{start}:{size} ")  # shadow skips: trailing blank
        elif roll < 0.85:
            lines.append(f"{owner}:{start}:0")
        elif roll < 0.87:
            lines.append(f"{owner}:{start}:{size}\r")
        elif roll < 0.89:
            lines.append(f"+{owner}:{start}:{size}")  # NIS: the rest stays unsorted
        elif roll < 0.91:
            lines.append(f"{owner}:{start}:{size}:extra")
        elif roll < 0.92:
            lines.append(f"{owner}:-1:{size}")
        elif roll < 0.93:
            lines.append("x" * 1030 + f":{start}:{size}")
        else:
            lines.append(f"{owner}:{start}:{size}")
    text = "\n".join(lines)
    if lines and rng.random() < 0.85:
        text += "\n"
    return text


def random_limits(rng: random.Random) -> tuple[int, int, int]:
    lo = rng.choice([100000, 1000, rng.randint(0, 400000)])
    count = rng.choice([65536, 1000, 1, 10, rng.randint(1, 150000)])
    room = rng.choice([count, count * 3, count * 10, rng.randint(0, 700000), 600000000])
    hi = lo + room
    if rng.random() < 0.05:
        hi = lo + count - 2  # shadow's "Invalid configuration" check
    return lo, hi, count


def login_defs_text(rng: random.Random, uid: tuple[int, int, int],
                    gid: tuple[int, int, int]) -> str:
    out = []
    for kind, (lo, hi, count) in (("UID", uid), ("GID", gid)):
        for name, value in (("MIN", lo), ("MAX", hi), ("COUNT", count)):
            style = rng.random()
            if style < 0.1:
                out.append(f'SUB_{kind}_{name}\t"{value}"')
            elif style < 0.15:
                out.append(f"SUB_{kind}_{name} {hex(value)}")
            elif style < 0.2:
                out.append(f"SUB_{kind}_{name} 1\nSUB_{kind}_{name}    {value}   ")
            else:
                out.append(f"SUB_{kind}_{name}\t\t{value}")
    out.insert(rng.randint(0, len(out)), "# comment line")
    return "\n".join(out) + "\n"


def make_prefix(root: pathlib.Path, subuid: str, subgid: str, defs: str,
                users: list[tuple[str, int]]) -> pathlib.Path:
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n" + "".join(
        f"{n}:x:{u}:{u}::/home/{n}:/bin/sh\n" for n, u in users))
    (etc / "group").write_text("root:x:0:\nusers:x:100:\n" + "".join(
        f"{n}:x:{u}:\n" for n, u in users))
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n" + "".join(
        f"{n}:*:19000:0:99999:7:::\n" for n, _ in users))
    (etc / "gshadow").write_text("root:*::\nusers:*::\n" + "".join(
        f"{n}:*::\n" for n, _ in users))
    (etc / "login.defs").write_text(defs)
    (etc / "subuid").write_bytes(subuid.encode())
    (etc / "subgid").write_bytes(subgid.encode())
    return etc


# -- useradd --------------------------------------------------------------------------


def predict_useradd(subuid: SubidFile, subgid: SubidFile,
                    defs: LoginDefs) -> tuple[int, str, str]:
    """useradd's exit status and the subuid/subgid texts it leaves."""
    try:
        new_uid, _ = shadow_useradd(subuid, "newuser", defs=defs, kind="uid")
    except AllocationError:
        return 16, subuid.text, subgid.text  # E_SUB_UID_UPDATE, nothing written
    try:
        new_gid, _ = shadow_useradd(subgid, "newuser", defs=defs, kind="gid")
    except AllocationError:
        return 18, subuid.text, subgid.text  # E_SUB_GID_UPDATE
    return 0, new_uid.text, new_gid.text


@needs_root
@needs_useradd
@pytest.mark.slow
@pytest.mark.parametrize("batch", range(BATCHES))
def test_useradd_matches_shadow(tmp_path: pathlib.Path, batch: int) -> None:
    outcomes: dict[int, int] = {}
    for i in range(PER_BATCH):
        seed = batch * 1000 + i
        rng = random.Random(seed)
        uid_limits, gid_limits = random_limits(rng), random_limits(rng)
        subuid = random_subid_text(rng, *uid_limits)
        subgid = random_subid_text(rng, *gid_limits)
        defs_text = login_defs_text(rng, uid_limits, gid_limits)
        root = tmp_path / f"s{seed}"
        etc = make_prefix(root, subuid, subgid, defs_text, [("alice", 1000)])
        want = predict_useradd(SubidFile.parse(subuid), SubidFile.parse(subgid),
                               LoginDefs.parse(defs_text))
        assert USERADD is not None
        run = subprocess.run([USERADD, "--prefix", str(root), "newuser"],
                             capture_output=True, text=True, check=False)
        got = (run.returncode, (etc / "subuid").read_bytes().decode(),
               (etc / "subgid").read_bytes().decode())
        assert got == want, (
            f"seed {seed}: useradd said {run.stderr!r}\nsubuid={subuid!r}\n"
            f"subgid={subgid!r}\nlogin.defs={defs_text!r}")
        outcomes[run.returncode] = outcomes.get(run.returncode, 0) + 1
        shutil.rmtree(root)
    # The generator must reach both outcomes, or the comparison proves little.
    assert outcomes.get(0, 0) > 0


@needs_root
@needs_useradd
def test_useradd_no_room_and_fill_gap(tmp_path: pathlib.Path) -> None:
    """Hand-picked: first fit fills a gap; a full range fails with status 16."""
    defs = "SUB_UID_MIN 100000\nSUB_UID_MAX 300000\nSUB_UID_COUNT 65536\n"
    cases = [
        ("a:100000:65536\nb:231072:65536\n", 0, IDRange(165536, 65536)),
        ("a:100000:200001\n", 16, None),
        ("# a:100000:65536\n", 0, IDRange(165536, 65536)),  # the comment reserves it
    ]
    assert USERADD is not None
    for n, (text, code, want) in enumerate(cases):
        root = tmp_path / str(n)
        etc = make_prefix(root, text, "", defs, [])
        run = subprocess.run([USERADD, "--prefix", str(root), "newuser"],
                             capture_output=True, text=True, check=False)
        assert run.returncode == code, run.stderr
        if want is None:
            with pytest.raises(AllocationError) as info:
                allocate(SubidFile.parse(text), defs=LoginDefs.parse(defs))
            assert info.value.reason == "no-room"
            assert "Can't get unique subordinate UID range" in run.stderr
        else:
            assert allocate(SubidFile.parse(text), defs=LoginDefs.parse(defs)) == want
            assert f"newuser:{want.start}:{want.size}\n" in (etc / "subuid").read_bytes().decode()


# -- usermod --------------------------------------------------------------------------


@needs_root
@needs_usermod
@pytest.mark.slow
@pytest.mark.parametrize("batch", range(BATCHES))
def test_usermod_matches_shadow(tmp_path: pathlib.Path, batch: int) -> None:
    changed = 0
    for i in range(PER_BATCH):
        seed = 50000 + batch * 1000 + i
        rng = random.Random(seed)
        limits = random_limits(rng)
        subuid = random_subid_text(rng, *limits)
        subgid = random_subid_text(rng, *limits)
        root = tmp_path / f"s{seed}"
        etc = make_prefix(root, subuid, subgid, "", [("alice", 1000)])
        argv: list[str] = []
        adds: list[IDRange] = []
        removes: list[IDRange] = []
        gadds: list[IDRange] = []
        gremoves: list[IDRange] = []
        f = SubidFile.parse(subuid)
        mine = [e.range for e in f.entries if e.owner == "alice"]
        for _ in range(rng.randint(1, 4)):
            if mine and rng.random() < 0.5:  # aim at alice's own ranges: trims and splits
                base = rng.choice(mine)
                first = base.start + rng.randint(-3, base.size)
                last = first + rng.randint(0, base.size)
            else:
                first = rng.randint(max(limits[0] - 1000, 0), limits[1] + 1000)
                last = first + rng.randint(0, limits[2] * 2)
            first = max(first, 0)
            r = IDRange.from_bounds(first, max(first, last))
            flag, bucket = rng.choice([("-v", adds), ("-V", removes),
                                       ("-w", gadds), ("-W", gremoves)])
            bucket.append(r)
            argv += [flag, f"{r.start}-{r.last}"]
        want_uid = shadow_usermod(SubidFile.parse(subuid), "alice", add=adds, remove=removes)
        want_gid = shadow_usermod(SubidFile.parse(subgid), "alice", add=gadds, remove=gremoves)
        assert USERMOD is not None
        run = subprocess.run([USERMOD, "--prefix", str(root), *argv, "alice"],
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, f"seed {seed}: {run.stderr}"
        assert (etc / "subuid").read_bytes().decode() == want_uid.text, (
            f"seed {seed}: usermod {argv}\nsubuid={subuid!r}")
        assert (etc / "subgid").read_bytes().decode() == want_gid.text, (
            f"seed {seed}: usermod {argv}\nsubgid={subgid!r}")
        changed += want_uid.text != subuid
        shutil.rmtree(root)
    assert changed > 0


# -- getsubids ------------------------------------------------------------------------


def _getsubids_in_namespace(etc: pathlib.Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    assert UNSHARE is not None and GETSUBIDS is not None
    script = 'mount --bind "$1" /etc && shift && exec "$@"'
    return subprocess.run(
        [UNSHARE, "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
         str(etc), GETSUBIDS, *args],
        capture_output=True, text=True, check=False)


def _can_bind_over_etc(tmp: pathlib.Path) -> bool:
    if not IS_ROOT or UNSHARE is None or GETSUBIDS is None:
        return False
    probe = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "true"],
                           capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("batch", range(4))
def test_getsubids_matches_shadow(tmp_path: pathlib.Path, batch: int) -> None:
    if not _can_bind_over_etc(tmp_path):
        pytest.skip("getsubids differential needs root, getsubids (uidmap) and unshare --mount")
    nonempty = 0
    for i in range(PER_BATCH):
        seed = 90000 + batch * 1000 + i
        rng = random.Random(seed)
        limits = random_limits(rng)
        subuid = random_subid_text(rng, *limits)
        subgid = random_subid_text(rng, *limits)
        uid = rng.choice([1000, 1001])
        gid = rng.choice([1000, 1001, 2000])
        etc = tmp_path / f"etc{seed}"
        etc.mkdir()
        passwd = f"root:x:0:0::/root:/bin/sh\nalice:x:{uid}:{uid}::/home/alice:/bin/sh\n"
        group = f"root:x:0:\nalice:x:{gid}:\n"
        (etc / "passwd").write_text(passwd)
        (etc / "group").write_text(group)
        (etc / "subuid").write_text(subuid)
        (etc / "subgid").write_text(subgid)
        (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\n")
        if os.path.exists("/etc/ld.so.cache"):
            shutil.copy("/etc/ld.so.cache", etc / "ld.so.cache")
        accounts = Accounts.parse(passwd, group)
        for kind, text, args in (("uid", subuid, ["alice"]), ("gid", subgid, ["-g", "alice"])):
            want = shadow_list_owner_ranges(SubidFile.parse(text), "alice",
                                            accounts=accounts, kind=kind)
            run = _getsubids_in_namespace(etc, args)
            if want:
                assert run.returncode == 0, run.stderr
                got = [tuple(int(x) for x in line.split()[2:]) for line in
                       run.stdout.splitlines()]
                assert got == want, f"seed {seed} {kind}: {text!r}"
                nonempty += 1
            else:
                assert run.returncode == 1 and "Error fetching ranges" in run.stderr, (
                    f"seed {seed} {kind}: {run.stdout!r} {text!r}")
        shutil.rmtree(etc)
    assert nonempty > 0


@needs_root
@needs_useradd
@pytest.mark.parametrize(
    "defs",
    [
        "SUB_UID_MIN 200000 # comment",  # unreadable: default 100000
        "SUB_UID_MIN=200000",  # no '=' syntax: default
        "X " + "y" * 1021 + "SUB_UID_MIN 300000",  # fgets splits the long line
        'SUB_UID_MIN "200000" trailing',  # value stops at the quote
        "SUB_UID_MIN 0606500",  # octal
        "SUB_UID_MIN 1000\nSUB_UID_MAX 70000\nSUB_UID_COUNT 65536",
    ],
)
def test_login_defs_quirks_match_useradd(tmp_path: pathlib.Path, defs: str) -> None:
    etc = make_prefix(tmp_path, "", "", defs + "\n", [])
    assert USERADD is not None
    subprocess.run([USERADD, "--prefix", str(tmp_path), "newuser"], capture_output=True,
                   check=False)
    want = allocate(SubidFile.parse(""), defs=LoginDefs.parse(defs + "\n"))
    assert (etc / "subuid").read_bytes().decode() == f"newuser:{want.start}:{want.size}\n"


@pytest.mark.parametrize(
    ("user", "uid", "gid", "subuid", "subgid"),
    [
        # A user whose name is its uid: every matching line is listed twice.
        ("1000", 1000, 1000, "1000:5:5\n", "1000:6:6\n"),
        # -g matches the gid of the GROUP of that name, not the user's uid.
        ("alice", 1000, 2000, "alice:1:1\n1000:2:2\n2000:3:3\n", "1000:4:4\n2000:5:5\n"),
        # Hex, octal and a commented-out line, as strtoul and subordinate_parse read them.
        ("alice", 1000, 1000, "alice:0x10:3\nalice:010:1\n# alice:1:1\n#alice:9:9\n", ""),
    ],
)
def test_getsubids_hand_picked(tmp_path: pathlib.Path, user: str, uid: int, gid: int,
                               subuid: str, subgid: str) -> None:
    if not _can_bind_over_etc(tmp_path):
        pytest.skip("getsubids differential needs root, getsubids (uidmap) and unshare --mount")
    etc = tmp_path / "etc"
    etc.mkdir()
    passwd = f"root:x:0:0::/root:/bin/sh\n{user}:x:{uid}:{uid}::/home/u:/bin/sh\n"
    group = f"root:x:0:\n{user}:x:{gid}:\n"
    for name, text in (("passwd", passwd), ("group", group), ("subuid", subuid),
                       ("subgid", subgid), ("nsswitch.conf", "passwd: files\ngroup: files\n")):
        (etc / name).write_text(text)
    if os.path.exists("/etc/ld.so.cache"):
        shutil.copy("/etc/ld.so.cache", etc / "ld.so.cache")
    accounts = Accounts.parse(passwd, group)
    for kind, text, args in (("uid", subuid, [user]), ("gid", subgid, ["-g", user])):
        want = shadow_list_owner_ranges(SubidFile.parse(text), user, accounts=accounts,
                                        kind=kind)
        run = _getsubids_in_namespace(etc, args)
        got = [tuple(int(x) for x in line.split()[2:]) for line in run.stdout.splitlines()]
        assert got == want, (kind, run.stderr)


@needs_root
@needs_useradd
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o755, 0o666])
def test_edit_keeps_owner_and_mode_as_useradd_does(tmp_path: pathlib.Path, mode: int) -> None:
    from userns.subid import add_subid_range

    text = "# hand-made\nalice:100000:65536\n"
    etc = make_prefix(tmp_path / "shadow", text, "", "", [])
    mine = tmp_path / "mine"
    mine.mkdir()
    for p in (etc / "subuid", mine / "subuid"):
        p.write_text(text)
        os.chown(p, 1234, 5678)
        os.chmod(p, mode)
    assert USERADD is not None
    run = subprocess.run([USERADD, "--prefix", str(tmp_path / "shadow"), "newuser"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    # useradd made "newuser" in the prefix's passwd: the writer checks the owner there.
    add_subid_range(mine / "subuid", "newuser", IDRange(165536, 65536),
                    accounts=Accounts.read(tmp_path / "shadow"))
    for name in ("subuid", "subuid-"):
        theirs, ours = (etc / name).stat(), (mine / name).stat()
        assert (ours.st_uid, ours.st_gid, ours.st_mode) == (
            theirs.st_uid, theirs.st_gid, theirs.st_mode), name
    assert (mine / "subuid-").read_bytes() == (etc / "subuid-").read_bytes()
    assert not (etc / "subuid.lock").exists() and not (mine / "subuid.lock").exists()


@needs_root
@needs_useradd
@pytest.mark.slow
@pytest.mark.parametrize("seed", [*range(200000, 200030), -1])
def test_useradd_three_times_matches_shadow(tmp_path: pathlib.Path, seed: int) -> None:
    """Successive useradd runs: each sees the file the previous one sorted and appended.

    Seed -1 is the NIS case: shadow walks the new entries last and hands the same
    middle hole to every new user.
    """
    if seed < 0:
        limits = (100000, 600100000, 65536)
        subuid = "a:100000:65536\nz:300000:65536\n+nis\n"
    else:
        rng = random.Random(seed)
        limits = random_limits(rng)
        subuid = random_subid_text(rng, *limits)
    defs_text = (f"SUB_UID_MIN {limits[0]}\nSUB_UID_MAX {limits[1]}\n"
                 f"SUB_UID_COUNT {limits[2]}\n")
    etc = make_prefix(tmp_path, subuid, "", defs_text, [])
    defs = LoginDefs.parse(defs_text)
    want = SubidFile.parse(subuid)
    got_ranges = []
    assert USERADD is not None
    for user in ("u1", "u2", "u3"):
        try:
            want, r = shadow_useradd(want, user, defs=defs)
            code = 0
            got_ranges.append(r)
        except AllocationError:
            code = 16
        run = subprocess.run([USERADD, "--prefix", str(tmp_path), user],
                             capture_output=True, text=True, check=False)
        # subgid starts empty under the default limits, so it always has room and the
        # outcome is subuid's.
        assert run.returncode == code, f"seed {seed} {user}: {run.stderr}"
        assert (etc / "subuid").read_bytes().decode() == want.text, f"seed {seed} {user}"
        if code:
            break
    if seed < 0:
        assert got_ranges == [IDRange(165536, 65536)] * 3


@needs_root
@pytest.mark.skipif(USERDEL is None, reason="userdel (Debian passwd) missing")
@pytest.mark.slow
@pytest.mark.parametrize("batch", range(2))
def test_userdel_matches_shadow(tmp_path: pathlib.Path, batch: int) -> None:
    """userdel drops the owner's entries; userns.SubidFile.remove_owner frees the same IDs."""
    for i in range(PER_BATCH):
        seed = 300000 + batch * 1000 + i
        rng = random.Random(seed)
        limits = random_limits(rng)
        subuid = random_subid_text(rng, *limits)
        subgid = random_subid_text(rng, *limits)
        root = tmp_path / f"s{seed}"
        etc = make_prefix(root, subuid, subgid, "", [("alice", 1000)])
        assert USERDEL is not None
        run = subprocess.run([USERDEL, "--prefix", str(root), "alice"],
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, f"seed {seed}: {run.stderr}"
        for name, text in (("subuid", subuid), ("subgid", subgid)):
            want = shadow_userdel(SubidFile.parse(text), "alice")
            got = (etc / name).read_bytes().decode()
            assert got == want.text, f"seed {seed} {name}: {text!r}"
            assert SubidFile.parse(got).ranges_for("alice") == \
                SubidFile.parse(text).remove_owner("alice").ranges_for("alice") == []
        shutil.rmtree(root)


@needs_root
@needs_useradd
def test_useradd_waits_for_our_lock(tmp_path: pathlib.Path) -> None:
    """shadow and userns take the same lock: useradd cannot write while we hold it."""
    import time

    from userns.subid import lock_file

    etc = make_prefix(tmp_path, "a:100000:65536\n", "", "", [])
    before = (etc / "subuid").read_bytes()
    assert USERADD is not None
    with lock_file(etc / "subuid"):
        proc = subprocess.Popen([USERADD, "--prefix", str(tmp_path), "newuser"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)  # long enough for an unlocked useradd to finish many times over
        assert (etc / "subuid").read_bytes() == before
        assert not (etc / "subuid-").exists()
        assert proc.poll() is None  # still waiting for the lock
    _, err = proc.communicate(timeout=60)
    # shadow retries its lock once a second, so it gets it after we let go.
    assert proc.returncode == 0, err
    assert (etc / "subuid").read_bytes() == before + b"newuser:165536:65536\n"
