"""Timing, ratios and the results table shared by every benchmark section.

These machines are noisy, so a benchmark never compares two numbers taken minutes apart:
:func:`compare` runs the candidate and its baselines in the same rounds, interleaved (the
order rotates from round to round), and each ratio is taken *within* a round, so a slow
minute slows both sides of it. The table reports the median of the per-round ratios and
their spread (the interquartile range, or min-max when there are fewer than four rounds),
in the same words as the median.

>>> r = Ratio.of([2.0, 4.0, 3.0])
>>> r.median, r.low, r.high
(3.0, 2.0, 4.0)
>>> r.text()
'3.00x faster'
>>> Ratio.of([0.5]).text()
'2.00x slower'
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Ratio",
    "Row",
    "Section",
    "Timing",
    "compare",
    "fmt_bytes",
    "fmt_count",
    "fmt_seconds",
    "ratio",
    "render_markdown",
    "render_text",
]


@dataclass(frozen=True)
class Ratio:
    """Baseline time ÷ candidate time, per round: above 1 means the candidate is faster."""

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, per_round: Sequence[float]) -> Ratio:
        """Median and spread of per-round ratios."""
        values = sorted(per_round)
        if not values:
            raise ValueError("no rounds")
        if len(values) >= 4:
            q = statistics.quantiles(values, n=4, method="inclusive")
            low, high = q[0], q[2]
        else:
            low, high = values[0], values[-1]
        return cls(statistics.median(values), low, high, len(values))

    @staticmethod
    def word(r: float) -> str:
        """``r`` as "Nx faster" (r ≥ 1) or "Nx slower"."""
        if r >= 1:
            return f"{r:.2f}x faster" if r < 10 else f"{r:.1f}x faster"
        inv = 1 / r
        return f"{inv:.2f}x slower" if inv < 10 else f"{inv:.1f}x slower"

    def text(self) -> str:
        """The median in words."""
        return self.word(self.median)

    def spread(self) -> str:
        """The spread of the per-round ratios, in the same words as the median.

        >>> Ratio.of([0.5, 0.25, 0.2]).spread()
        'range 2-5x slower (n=3)'
        """
        kind = "IQR" if self.rounds >= 4 else "range"
        if self.median >= 1:
            lo, hi, word = self.low, self.high, "faster"
        else:
            lo, hi, word = 1 / self.high, 1 / self.low, "slower"
        return f"{kind} {lo:.3g}-{hi:.3g}x {word} (n={self.rounds})"


@dataclass
class Timing:
    """Per-round wall times of one variant, in seconds, and the work units per run."""

    name: str
    times: list[float] = field(default_factory=list)
    units: int = 1

    @property
    def median(self) -> float:
        """Median seconds per run."""
        return statistics.median(self.times)

    @property
    def per_unit(self) -> float:
        """Median seconds per work unit (per ID, per file)."""
        return self.median / self.units


def compare(
    variants: dict[str, Callable[[], object]],
    *,
    rounds: int,
    units: dict[str, int] | None = None,
    setup: Callable[[str], object] | None = None,
) -> dict[str, Timing]:
    """Run each variant once per round, rotating the order; time each run.

    ``units`` says how much work one run of a variant does (IDs translated, entries
    shifted); the ratio of two variants is then taken per unit, so variants may do
    different amounts of work per run. ``setup(name)`` runs untimed before each run.

    >>> out = compare({"a": lambda: sum(range(100)), "b": lambda: sum(range(10))}, rounds=3)
    >>> [len(t.times) for t in out.values()]
    [3, 3]
    """
    names = list(variants)
    out = {n: Timing(n, units=(units or {}).get(n, 1)) for n in names}
    for rnd in range(rounds):
        k = rnd % len(names)
        for name in names[k:] + names[:k]:
            if setup is not None:
                setup(name)
            t0 = time.perf_counter()
            variants[name]()
            out[name].times.append(time.perf_counter() - t0)
    return out


def ratio(candidate: Timing, baseline: Timing) -> Ratio:
    """Per-round ``baseline / candidate`` time per unit, summarized."""
    return Ratio.of(
        [
            (b / baseline.units) / (c / candidate.units)
            for c, b in zip(candidate.times, baseline.times)
        ]
    )


@dataclass
class Row:
    """One line of the results table: a candidate against one baseline."""

    case: str
    candidate: str
    baseline: str
    cand_value: str
    base_value: str
    result: Ratio | None
    target: str = ""
    met: bool | None = None
    note: str = ""

    def verdict(self) -> str:
        """Whether the target was met: yes, NO, or empty when the row has no target."""
        if self.met is None:
            return ""
        return "yes" if self.met else "NO"


@dataclass
class Section:
    """A titled group of rows, with free-text notes and an optional unavailability reason."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None
    extra_tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)


HEADERS = ["case", "userns", "baseline", "userns time", "baseline time", "ratio (median)", "spread",
           "target", "met"]


def _cells(row: Row) -> list[str]:
    return [
        row.case,
        row.candidate,
        row.baseline,
        row.cand_value,
        row.base_value,
        row.result.text() if row.result else "—",
        row.result.spread() if row.result else "",
        row.target,
        row.verdict(),
    ]


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return out


def render_markdown(sections: Sequence[Section]) -> str:
    """The sections as Markdown tables (the body of ``docs/performance.md``)."""
    lines: list[str] = []
    for sec in sections:
        lines += [f"## {sec.title}", ""]
        if sec.unavailable is not None:
            lines += [f"not available: {sec.unavailable}", ""]
            continue
        if sec.rows:
            lines += _md_table(HEADERS, (_cells(r) for r in sec.rows))
            lines.append("")
        for headers, rows in sec.extra_tables:
            lines += _md_table(headers, rows)
            lines.append("")
        lines += [f"- {n}" for n in sec.notes]
        if sec.notes:
            lines.append("")
    return "\n".join(lines)


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers), fmt.format(*("-" * w for w in widths))] + [
        fmt.format(*r) for r in rows
    ]


def render_text(sections: Sequence[Section]) -> str:
    """The sections as aligned plain-text tables, for the terminal."""
    lines: list[str] = []
    for sec in sections:
        lines += [f"== {sec.title}"]
        if sec.unavailable is not None:
            lines += [f"not available: {sec.unavailable}", ""]
            continue
        if sec.rows:
            lines += _text_table(HEADERS, [_cells(r) for r in sec.rows])
        for headers, rows in sec.extra_tables:
            lines.append("")
            lines += _text_table(headers, rows)
        lines += [f"  * {n}" for n in sec.notes]
        lines.append("")
    return "\n".join(lines)


def fmt_seconds(s: float) -> str:
    """A duration with a unit that keeps 3 significant digits.

    >>> fmt_seconds(2.5e-7), fmt_seconds(0.0123), fmt_seconds(4.2)
    ('250 ns', '12.3 ms', '4.2 s')
    """
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    raise AssertionError("unreachable")


def fmt_count(n: float) -> str:
    """``12345`` → ``'12.3k'``; ``2_000_000`` → ``'2M'``.

    >>> fmt_count(999), fmt_count(12345), fmt_count(2_000_000)
    ('999', '12.3k', '2M')
    """
    for suffix, scale in (("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"


def fmt_bytes(n: float) -> str:
    """``fmt_bytes(3 * 2**20)`` → ``'3.0 MiB'``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
