"""``fleetlog.limits``: the bounds every entry point checks — control characters, name
length, node sets counted before they are expanded, seqs, times and durations."""

from __future__ import annotations

import time

import pytest
from ClusterShell.NodeSet import NodeSetParseError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlog import limits

# -- text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["\x00", "a\x00b", "\x01", "\x1b[31m", "\x7f", "\x85", "\u202e", "\u2066", "\udcff", "\u2028"],
)
def test_control_characters_are_refused_in_names_and_values(text: str) -> None:
    assert limits.unsafe_chars(text)
    assert limits.name_problem(text) is not None
    assert limits.text_problem(text.replace("\u2028", "\x00")) is not None
    with pytest.raises(limits.InputError, match="--x: "):
        limits.check_text(text.replace("\u2028", "\x00"), "--x")


def test_free_text_may_hold_tabs_and_line_breaks_but_a_name_may_not() -> None:
    text = "line one\r\n\tline two\u2028three"
    assert limits.text_problem(text, multiline=True) is None
    assert limits.text_problem(text) is not None
    assert limits.name_problem("a\tb") is not None


def test_ordinary_text_is_fine() -> None:
    for text in ["", "plain", "ünïcödé ☃ 日本語 🙂", "x; rm -rf /", "$(id)", "a\u200db", "\u00a0"]:
        assert limits.unsafe_chars(text) == []
        assert limits.text_problem(text) is None


def test_the_message_names_the_character() -> None:
    assert limits.text_problem("a\x00b") == "a NUL character ('\\x00') cannot be in a value"
    assert "an escape character ('\\x1b')" in (limits.text_problem("\x1b[0m") or "")
    assert "control characters ('\\x01', '\\x02')" in (limits.text_problem("\x01\x02") or "")


def test_escape_writes_control_characters_as_escapes() -> None:
    assert limits.escape("a\x1b[31mb\x00\u202e\udcff") == "a\\x1b[31mb\\x00\\u202e\\udcff"
    assert limits.escape("line\nnext", keep="\n") == "line\nnext"
    assert limits.escape("line\nnext") == "line\\x0anext"
    assert limits.escape("plain ünï ☃") == "plain ünï ☃"


def test_shown_quotes_escapes_and_cuts() -> None:
    assert limits.shown("a\x00") == "'a\\x00'"
    long = limits.shown("x" * 1000)
    assert len(long) < 70 and long.endswith("...")


def test_names_are_at_most_253_bytes() -> None:
    assert limits.name_problem("a" * 253) is None
    assert "at most 253 bytes" in (limits.name_problem("a" * 254) or "")
    # Bytes, not characters: 127 two-byte characters are 254 bytes.
    assert limits.name_problem("é" * 126) is None
    assert "this one is 254" in (limits.name_problem("é" * 127) or "")


def test_values_are_at_most_64_kib() -> None:
    assert limits.text_problem("a" * limits.MAX_VALUE_BYTES) is None
    assert "at most 65536 bytes" in (limits.text_problem("a" * (limits.MAX_VALUE_BYTES + 1)) or "")


# -- numbers and times -----------------------------------------------------------------


def test_a_seq_is_ascii_digits_up_to_2_63() -> None:
    assert limits.parse_seq("1200", "--at") == 1200
    assert limits.parse_seq("0007", "--at") == 7
    assert limits.parse_seq(str(limits.MAX_SEQ), "--at") == limits.MAX_SEQ
    with pytest.raises(limits.InputError, match="--at '9223372036854775808': a seq is at most"):
        limits.parse_seq(str(limits.MAX_SEQ + 1), "--at")
    with pytest.raises(limits.InputError):
        limits.parse_seq("9" * 5000, "--at")  # past int()'s own digit limit too
    for not_a_seq in ["", "-1", "1.5", "١٢", "²", "12\n", " 12"]:
        assert limits.parse_seq(not_a_seq, "--at") is None


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-11-25T14:02:00Z", "2026-11-25T14:02:00.000000Z"),
        ("2026-11-25", "2026-11-25T00:00:00.000000Z"),
        ("2026-11-25T15:02:00+01:00", "2026-11-25T14:02:00.000000Z"),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
    ],
)
def test_times_are_iso_in_utc(text: str, iso: str) -> None:
    assert limits.iso(limits.parse_time(text, "--at")) == iso


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01",
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-14:00",  # overflows when moved to UTC
        "0001-01-01T00:00:00+14:00",
        "yesterday",
        "",
        "\x00",
    ],
)
def test_times_out_of_range_or_malformed_are_input_errors(text: str) -> None:
    with pytest.raises(limits.InputError, match="--now "):
        limits.parse_time(text, "--now")


def test_numbers_and_durations_are_range_checked() -> None:
    assert limits.int_problem(limits.MAX_INT) is None
    assert limits.int_problem(limits.MAX_INT + 1) is not None
    assert limits.int_problem(limits.MIN_INT - 1) is not None
    for bad in (float("nan"), float("inf"), float("-inf")):
        assert limits.float_problem(bad) is not None
    assert limits.check_duration(3600.0, "--every", "1h") == 3600.0
    for bad in (-1.0, limits.MAX_DURATION + 1, float("inf")):
        with pytest.raises(limits.InputError, match="--every"):
            limits.check_duration(bad, "--every", "x")


# -- node sets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodeset", "count"),
    [
        ("node1", 1),
        ("node[1-8]", 8),
        ("node[001-100]", 100),
        ("a[1-2],b3", 3),
        ("rack[1-2]n[1-4]", 8),
        ("x[1-10/3]", 4),
        ("n[-3-2]", 6),
        ("n1[0-9]", 10),
        ("n[1-3]0", 3),
        ("a[1-3]!a2", 4),  # an upper bound: both operands are built
        ("a[1-3]&a[2-4]", 6),
        ("x[1-100000000]", 100_000_000),
        ("x[1-99999999999]", 99_999_999_999),
        ("a[1-1000]b[1-1000]c[1-1000]", 1_000_000_000),
    ],
)
def test_nodeset_size_counts_without_expanding(nodeset: str, count: int) -> None:
    started = time.perf_counter()
    assert limits.nodeset_size(nodeset) == count
    assert time.perf_counter() - started < 0.1  # counted, never built


def test_nodesets_over_the_cap_are_refused_before_clustershell_sees_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ClusterShell.NodeSet as clustershell

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("NodeSet was built for a set over the cap")

    monkeypatch.setattr(clustershell, "NodeSet", never)
    for big in ["node[1-10000000]", "n[1-100000000]", "x[1-99999999999]", "a[1-2000]b[1-1000]"]:
        with pytest.raises(limits.NodeSetTooLarge, match="more than the 1000000 allowed"):
            limits.expand_nodeset(big)


def test_the_cap_is_1_000_000_and_fleetlog_max_nodeset_changes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(limits.MAX_NODESET_ENV, raising=False)
    assert limits.max_nodeset() == 1_000_000
    assert len(limits.expand_nodeset("n[1-1000000]")) == 1_000_000
    monkeypatch.setenv(limits.MAX_NODESET_ENV, "5")
    assert limits.expand_nodeset("n[1-5]") == ["n1", "n2", "n3", "n4", "n5"]
    with pytest.raises(limits.NodeSetTooLarge, match=r"names 6 resources, more than the 5"):
        limits.expand_nodeset("n[1-6]")
    for bad in ["0", "-1", "many", "1e6", "9" * 30]:
        monkeypatch.setenv(limits.MAX_NODESET_ENV, bad)
        with pytest.raises(limits.InputError, match="FLEETLOG_MAX_NODESET="):
            limits.max_nodeset()


def test_node_groups_and_wildcards_are_never_resolved() -> None:
    # Without RESOLVER_NOGROUP, '@*' asks ClusterShell's groups.conf (which may run
    # commands); here it is a literal name that no resource can have.
    assert limits.expand_nodeset("@all") == ["@all"]
    assert limits.expand_nodeset("@*") == ["@*"]
    assert limits.expand_nodeset("n*") == ["n*"]


NODESET_TEXT = st.text(alphabet="ab0123456789[]-,/!&^ @", max_size=24)


@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(NODESET_TEXT)
def test_nodeset_size_is_an_upper_bound_on_what_clustershell_builds(text: str) -> None:
    bound = limits.nodeset_size(text)
    if bound > 100_000:
        return  # would be refused (and, were the bound wrong, the test would run away)
    try:
        names = limits.expand_nodeset(text)
    except (NodeSetParseError, ValueError):
        return
    assert len(names) <= bound


ONE_RANGE_PART = st.text(alphabet="ab_.-Z0", max_size=5)
RANGE_BOUND = st.sampled_from(["0", "1", "2", "7", "9", "10", "11", "99", "100", "01", "007"])


@settings(
    max_examples=3000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ONE_RANGE_PART, RANGE_BOUND, RANGE_BOUND, ONE_RANGE_PART)
def test_one_range_names_what_clustershell_names_in_its_order(
    prefix: str, lo: str, hi: str, suffix: str
) -> None:
    """``name[lo-hi]`` is expanded without ClusterShell when it is one range of unpadded
    numbers between digit-free parts: the same names in the same order, and a range
    ClusterShell refuses is refused (reversed bounds, padding and digits go to it)."""
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet

    text = f"{prefix}[{lo}-{hi}]{suffix}"
    try:
        expected: list[str] | None = list(NodeSet(text, resolver=RESOLVER_NOGROUP))
    except (NodeSetParseError, ValueError):
        expected = None
    if expected is None:
        with pytest.raises((NodeSetParseError, ValueError)):
            limits.expand_nodeset(text)
    else:
        assert limits.expand_nodeset(text) == expected


def test_a_large_range_is_expanded_without_clustershell(monkeypatch: pytest.MonkeyPatch) -> None:
    import ClusterShell.NodeSet as clustershell

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("ClusterShell was asked")

    monkeypatch.setattr(clustershell, "NodeSet", never)
    names = limits.expand_nodeset("r[1-100000]")
    assert names[:3] == ["r1", "r2", "r3"] and names[-1] == "r100000" and len(names) == 100_000
    assert limits.expand_nodeset("rack-a.n[9-11]_x") == [
        "rack-a.n9_x",
        "rack-a.n10_x",
        "rack-a.n11_x",
    ]
    with pytest.raises(ValueError, match="ClusterShell was asked"):
        limits.expand_nodeset("r[01-10]")  # padded: ClusterShell's
