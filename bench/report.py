"""Figures, percentiles and the printed table every benchmark ends with."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone


@dataclass
class Figure:
    """One measured value, its baseline from the same run, and the target it should reach."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""  # how the target reads in the table, e.g. ">= 0.5x baseline"
    met: bool | None = None  # None: no target, or not checkable in this run
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline


@dataclass
class Report:
    """The figures of one benchmark run, with what was run and where."""

    benchmark: str
    command: str
    settings: dict[str, object] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def print(self) -> None:
        print(render_table(self), flush=True)
        path = os.environ.get("BENCH_JSON")
        if path:
            # bench/run collects every report in one JSON-lines file for docs/benchmarks.md.
            with open(path, "a") as output:
                record = {"benchmark": self.benchmark, "command": self.command, "settings": self.settings,
                          "figures": [{**asdict(f), "ratio": f.ratio} for f in self.figures], "notes": self.notes,
                          "machine": machine_summary(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                output.write(json.dumps(record) + "\n")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (fraction 0.5 for p50, 0.99 for p99); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def at_least(value: float, minimum: float) -> bool:
    return value >= minimum


def at_most(value: float, maximum: float) -> bool:
    return value <= maximum


def _format(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def render_table(report: Report) -> str:
    """Render the report as a Markdown table, so it can be pasted into docs/benchmarks.md."""
    lines = [f"\n## {report.benchmark}", f"`{report.command}`", ""]
    if report.settings:
        lines.append("settings: " + ", ".join(f"{key}={value}" for key, value in report.settings.items()))
        lines.append("")
    lines.append("| figure | value | baseline | ratio | target | met |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for figure in report.figures:
        ratio = figure.ratio
        met = {True: "yes", False: "NO", None: "-"}[figure.met]
        note = f" ({figure.note})" if figure.note else ""
        lines.append(
            f"| {figure.name}{note} | {_format(figure.value)} {figure.unit} | {_format(figure.baseline)} | "
            f"{'-' if ratio is None else f'{ratio:.2f}x'} | {figure.target or '-'} | {met} |"
        )
    lines.extend(f"\n- {note}" for note in report.notes)
    return "\n".join(lines)


def machine_summary() -> str:
    """CPU model, core count, memory and Python version, for the record."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as info:
            kib = int(info.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average %.1f at the end" % os.getloadavg()[0]
    return f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, Python {sys.version.split()[0]}{load}"


def timed(function: Callable[[], object]) -> float:
    """Run `function` once and return the seconds it took on the monotonic clock."""
    import time

    start = time.perf_counter()
    function()
    return time.perf_counter() - start
