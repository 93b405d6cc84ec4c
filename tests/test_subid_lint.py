"""Lint rules for a pair of subid files."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from userns.logindefs import LoginDefs
from userns.subid import Accounts, Finding, Severity, SubidFile, lint

ACCOUNTS = Accounts.parse(
    "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
    "alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n"
    "svc:x:500000:500000::/:/bin/false\n",
    "root:x:0:\nnogroup:x:65534:\nalice:x:1000:\nbob:x:1001:\n",
)


def reasons(findings: list[Finding], line: int | None = None) -> list[str]:
    return [f.reason for f in findings if line is None or f.lineno == line]


def test_clean_pair_has_no_findings() -> None:
    uid = SubidFile.parse("alice:100000:65536\nbob:165536:65536\n", path="subuid")
    gid = SubidFile.parse("alice:100000:65536\nbob:165536:65536\n", path="subgid")
    assert lint(uid, gid, accounts=ACCOUNTS) == []


def test_touching_ranges_do_not_overlap_but_contained_ones_do() -> None:
    touching = SubidFile.parse("alice:100000:65536\nbob:165536:65536\n")
    assert reasons(lint(touching)) == []
    inside = SubidFile.parse("alice:100000:65536\nbob:110000:10\n", path="subuid")
    found = lint(inside)
    assert [(x.lineno, x.reason) for x in found] == [
        (1, "overlap"), (2, "overlap"), (2, "too-few-ids")]
    assert "contains bob's [110000, 110010) (line 2)" in found[0].message
    assert "lies inside alice's [100000, 165536) (line 1)" in found[1].message


def test_same_owner_by_name_and_uid_is_self_overlap() -> None:
    f = SubidFile.parse("alice:100000:65536\n1000:100000:65536\n")
    assert reasons(lint(f, accounts=ACCOUNTS)) == ["self-overlap", "self-overlap"]
    # Without passwd data, "1000" is another owner.
    assert reasons(lint(f)) == ["overlap", "overlap"]


def test_own_uid_inside_range_and_accounts_covered() -> None:
    f = SubidFile.parse("alice:0:600000\n", path="subuid")
    got = lint(f, accounts=ACCOUNTS)
    assert set(reasons(got)) == {"own-id-in-range", "covers-account", "covers-root",
                                 "below-sub-min"}
    covers = next(x for x in got if x.reason == "covers-account")
    assert "root (0)" in covers.message and "svc (500000)" in covers.message
    assert "alice (1000)" not in covers.message  # reported as own-id-in-range instead
    assert max(x.severity for x in got) is Severity.SECURITY
    below = next(x for x in got if x.reason == "below-sub-min")
    assert "65534 (nobody)" in below.message


def test_subgid_uses_group_ids() -> None:
    gid = SubidFile.parse("alice:1000:70000\n")
    got = lint(SubidFile.parse(""), gid, accounts=ACCOUNTS, defs=LoginDefs.parse(""))
    assert "own-id-in-range" in reasons(got)
    covered = next(x for x in got if x.reason == "covers-account")
    assert "bob (1001)" in covered.message and "nogroup (65534)" in covered.message


def test_too_few_ids_sums_an_owners_ranges() -> None:
    f = SubidFile.parse("alice:100000:30000\nalice:200000:35536\nbob:300000:65535\n")
    got = [x for x in lint(f) if x.reason == "too-few-ids"]
    assert [x.owner for x in got] == ["bob"]
    assert "65535" in got[0].message and "lchown" in got[0].message


def test_unknown_owner_and_missing_pair() -> None:
    uid = SubidFile.parse("ghost:100000:65536\n4242:165536:65536\nalice:231072:65536\n")
    gid = SubidFile.parse("alice:100000:65536\n")
    got = lint(uid, gid, accounts=ACCOUNTS)
    unknown = [x.owner for x in got if x.reason == "unknown-owner"]
    assert unknown == ["ghost", "4242"]
    assert all(x.severity is Severity.INFO for x in got if x.reason == "unknown-owner")
    assert [x.owner for x in got if x.reason == "missing-pair"] == ["ghost", "4242"]


def test_docker_root_misread_is_a_security_finding() -> None:
    cases = {
        "alice:0x186a0:65536": "docker-root-misread",  # hex: shadow 100000, Docker 0
        "alice: 100000:65536": "docker-root-misread",  # leading space: Docker 0
        "alice:100000abc:65536": "docker-root-misread",  # shadow skips, Docker 0
    }
    for line, reason in cases.items():
        got = lint(SubidFile.parse(line + "\n"))
        sec = [x for x in got if x.severity is Severity.SECURITY]
        assert [x.reason for x in sec] == [reason], line
        assert "HOST root" in sec[0].message


def test_docker_other_misreads() -> None:
    octal = lint(SubidFile.parse("alice:0100000:65536\n"))
    assert "docker-misread" in reasons(octal)
    mis = next(x for x in octal if x.reason == "docker-misread")
    assert "alice:100000:65536" in mis.message and "alice:32768:65536" in mis.message
    trailing = lint(SubidFile.parse("alice:100000:65536 \n"))
    assert "docker-misread" in reasons(trailing) and "skips" in trailing[0].message + \
        trailing[1].message
    literal_zero = lint(SubidFile.parse("alice:0:65536\n"))
    assert "docker-root-misread" not in reasons(literal_zero)
    assert "covers-root" in reasons(literal_zero)


def test_syntax_problems_become_findings_with_carets() -> None:
    f = SubidFile.parse("ok:100000:65536\nbad:1:0\n#x:5:5\n", path="subuid")
    got = lint(f)
    zero = next(x for x in got if x.reason == "zero-count")
    assert zero.severity is Severity.ERROR and zero.lineno == 2
    assert zero.render().splitlines()[1:] == ["    bad:1:0", "          ^"]
    comment = next(x for x in got if x.reason == "comment-read-as-entry")
    assert comment.severity is Severity.WARNING


def test_findings_are_sorted_by_file_and_line() -> None:
    uid = SubidFile.parse("b:1:0\na:100000:1\n", path="subuid")
    gid = SubidFile.parse("a:2:0\n", path="subgid")
    got = lint(uid, gid)
    keys = [(x.path, x.lineno) for x in got]
    assert keys == sorted(keys, key=lambda k: (k[0] or "", k[1] or 0))


entries = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 60), st.integers(1, 20)), max_size=12)


@given(entries)
@settings(deadline=None)
def test_overlap_findings_match_brute_force(items: list[tuple[str, int, int]]) -> None:
    f = SubidFile.from_entries(items)
    want: dict[tuple[int, str], set[int]] = {}
    for i, (o1, s1, c1) in enumerate(items):
        for j, (o2, s2, c2) in enumerate(items):
            if i != j and s1 < s2 + c2 and s2 < s1 + c1:
                reason = "overlap" if o1 != o2 else "self-overlap"
                want.setdefault((i + 1, reason), set()).add(j + 1)
    got = {(x.lineno or 0, x.reason): x.message for x in lint(f)
           if x.reason in ("overlap", "self-overlap")}
    assert set(got) == set(want)
    for key, message in got.items():
        assert f"meets {len(want[key])} " in message
        shown = {int(part.split(")")[0]) for part in message.split("(line ")[1:]}
        assert shown and shown <= want[key]


def test_many_identical_lines_stay_fast() -> None:
    """10 000 copies of one line: one finding each, counted by bisection."""
    f = SubidFile.parse("a:100000:65536\n" * 5000 + "b:100000:65536\n" * 5000)
    got = [x for x in lint(f) if x.reason in ("overlap", "self-overlap")]
    assert len(got) == 20000
    assert "meets 5000 ranges of other owners" in got[0].message
    assert "meets 4999 other entries of the same owner" in got[1].message


def test_missing_pair_knows_a_name_and_its_uid_are_one_owner() -> None:
    acc = Accounts.from_pairs([("alice", 1001)], [("alice", 1001)])
    uid = SubidFile.parse("1001:300000:65536\n", path="subuid")
    gid = SubidFile.parse("alice:300000:65536\n", path="subgid")
    assert [f.reason for f in lint(uid, gid, accounts=acc) if f.reason == "missing-pair"] == []
    # Without accounts nothing says they are the same owner.
    assert sorted(f.reason for f in lint(uid, gid) if f.reason == "missing-pair") == [
        "missing-pair", "missing-pair"]


def test_overlap_examples_say_how_many_were_left_out() -> None:
    # One wide range met by 6 others: the finding names 3 examples and counts the rest.
    text = "big:100000:700000\n" + "".join(f"o{i}:{100000 + i * 65536}:10\n" for i in range(6))
    f = SubidFile.parse(text)
    (big,) = [x for x in lint(f) if x.reason == "overlap" and x.owner == "big"]
    assert "meets 6 ranges of other owners" in big.message
    assert big.message.count("(line ") == 3 and big.message.endswith("; … and 3 more")
