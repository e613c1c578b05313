"""Figures from the runner's records: achieved rate, latency percentiles, errors by status, over time windows.

Latencies are from each request's due time (see ``runner``), so they include
any time the request waited for the client or the server to get to it.
Percentiles are nearest-rank. Tables print with ``rich`` when it is
installed, else as plain aligned text (which is also what goes into files).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.load.runner import CONNECT, OVERLOAD, TIMEOUT, Record

STATUS_NAMES = {OVERLOAD: "client-overload", TIMEOUT: "timeout", CONNECT: "connection"}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (``q`` in 0..1); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, str(status))


@dataclass(frozen=True)
class Summary:
    """Requests due in [start, end) of the wall clock."""

    start: float
    end: float
    requests: int
    ok: int
    errors: Counter[str]
    p50: float
    p99: float
    p999: float
    max: float

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1e-9)

    @property
    def achieved_rate(self) -> float:
        """Successful answers per second of the window."""
        return self.ok / self.seconds

    @property
    def offered_rate(self) -> float:
        return self.requests / self.seconds

    @property
    def error_rate(self) -> float:
        return sum(self.errors.values()) / self.requests if self.requests else 0.0

    def errors_text(self) -> str:
        return ", ".join(f"{name}×{n}" for name, n in self.errors.most_common()) or "-"


def summarize(records: Iterable[Record], start: float | None = None, end: float | None = None) -> Summary:
    """The records due in [start, end) (wall clock; default: all of them)."""
    chosen = [r for r in records if (start is None or r.due_wall >= start) and (end is None or r.due_wall < end)]
    if start is None:
        start = min((r.due_wall for r in chosen), default=0.0)
    if end is None:
        end = max((r.due_wall for r in chosen), default=start)
    latencies = [r.latency for r in chosen if r.ok]
    errors = Counter(status_name(r.status) for r in chosen if not r.ok)
    return Summary(
        start=start,
        end=end,
        requests=len(chosen),
        ok=len(latencies),
        errors=errors,
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
        p999=percentile(latencies, 0.999),
        max=max(latencies, default=float("nan")),
    )


def by_kind(records: Iterable[Record], start: float | None = None, end: float | None = None) -> dict[str, Summary]:
    """One summary per request kind, over the same window."""
    kinds: dict[str, list[Record]] = {}
    for record in records:
        kinds.setdefault(record.kind, []).append(record)
    return {kind: summarize(rs, start, end) for kind, rs in sorted(kinds.items())}


def windows(records: Sequence[Record], width: float) -> list[Summary]:
    """Consecutive windows of ``width`` seconds over the records' due times."""
    if not records:
        return []
    first = min(r.due_wall for r in records)
    last = max(r.due_wall for r in records)
    count = int((last - first) // width) + 1
    return [summarize(records, first + k * width, first + (k + 1) * width) for k in range(count)]


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def summary_row(label: str, s: Summary) -> list[str]:
    """A table row: label, offered and achieved rate, p50/p99/p99.9 in ms, error rate and errors."""
    return [
        label,
        f"{s.offered_rate:.1f}",
        f"{s.achieved_rate:.1f}",
        ms(s.p50),
        ms(s.p99),
        ms(s.p999),
        f"{s.error_rate:.1%}",
        s.errors_text(),
    ]


SUMMARY_HEADERS = ["window", "offered/s", "ok/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "by status"]


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; text columns left-aligned, figures right-aligned."""
    widths = [max([len(str(h)), *(len(str(row[i])) for row in rows)]) for i, h in enumerate(headers)]

    def numeric(i: int) -> bool:
        cells = [str(row[i]) for row in rows if str(row[i]) not in ("-", "")]
        return bool(cells) and all(c.replace(".", "").replace("%", "").replace("-", "").isdigit() for c in cells)

    aligned = [numeric(i) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if right else str(c).ljust(w) for c, w, right in zip(cells, widths, aligned, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Print the table (rich if installed) and return its plain-text form."""
    text = plain_table(headers, rows)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}\n{text}", flush=True)
        return text
    table = Table(title=title)
    for header in headers:
        table.add_column(header, no_wrap=True)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    width = max(len(line) for line in text.splitlines()) + 3 * len(headers) + 4  # rich's borders and padding
    Console(width=max(width, 80)).print(table)
    return text
