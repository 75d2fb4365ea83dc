"""Medians, ratios, targets; the printed table, the JSON file, the plot and ``docs/performance.md``."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

from bench import hostile, startup
from bench.lifecycle import STAGES
from bench.servers import VARIANTS

LABELS = {v.key: v.label for v in VARIANTS}
DOCS_START = "<!-- bench-results:start -->"
DOCS_END = "<!-- bench-results:end -->"
#: Inside the results section: the CLI start-up table, which ``python -m bench --only startup`` replaces alone.
STARTUP_START = "<!-- bench-startup:start -->"
STARTUP_END = "<!-- bench-startup:end -->"

#: Issue 6's targets: (name, metric key, comparison, bound).
TARGETS = (
    ("single row: throughput >= 0.9x floor", "single_row_throughput_vs_floor", ">=", 0.9),
    ("single row: p50 <= 1.15x floor", "single_row_p50_vs_floor", "<=", 1.15),
    ("1000-row batches: rows/s >= 3x naive", "batch_1000_rows_per_s_vs_naive", ">=", 3.0),
    ("single row: throughput >= 5x mlflow serve", "single_row_throughput_vs_mlflow", ">=", 5.0),
    ("cold start <= 1.5 s", "cold_start_s", "<=", 1.5),
    ("RSS per worker <= 150 MB", "rss_per_worker_mb", "<=", 150.0),
    ("single row: throughput >= 0.9x before (sync)", "single_row_throughput_vs_sync", ">=", 0.9),
    ("1000-row batches: rows/s >= 0.85x floor", "batch_1000_rows_per_s_vs_floor", ">=", 0.85),
    ("20 stalled clients: p99 <= 3x, none failed", "stalled_p99_vs_undisturbed", "<=", 3.0),
    ("300 idle connections: p99 <= 3x, none failed", "idle_p99_vs_undisturbed", "<=", 3.0),
)


def median(values: list[float]) -> float:
    """Median of the finite values; NaN when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def summarize(raw: dict) -> dict:
    """Medians over the repetitions, per server, batch size and client count."""
    variants = [key for key in LABELS if any(run["variant"] == key for run in raw["runs"])]
    summary: dict = {"servers": {}, "batches": raw["plan"]["batches"], "clients": raw["plan"]["clients"]}
    for key in variants:
        runs = [run for run in raw["runs"] if run["variant"] == key]
        server = {
            "label": LABELS[key],
            "repetitions": len(runs),
            "cold_start_s": median([run["cold_start_s"] for run in runs]),
            "rss_per_worker_mib": median([run["memory"]["rss_per_worker_mib"] for run in runs]),
            "pss_per_worker_mib": median([run["memory"]["pss_per_worker_mib"] for run in runs]),
            "tree_rss_mib": median([run["memory"]["tree_rss_mib"] for run in runs]),
            "load_errors": sum(_errors(run) for run in runs),
            "batches": {},
        }
        for batch in raw["plan"]["batches"]:
            loads = [run["load"][str(batch)] for run in runs]
            entry = {
                "p50_ms": median([x["latency"]["p50_ms"] for x in loads]),
                "p99_ms": median([x["latency"]["p99_ms"] for x in loads]),
                "throughput": {},
            }
            for clients in raw["plan"]["clients"]:
                rps = median([x["throughput"][str(clients)]["requests_per_second"] for x in loads])
                entry["throughput"][str(clients)] = {"requests_per_s": rps, "rows_per_s": rps * batch}
            server["batches"][str(batch)] = entry
        summary["servers"][key] = server
    summary["ceiling"] = _ceiling(raw.get("ceiling", []))
    summary["lifecycle"] = {
        stage: median([run.get(stage, float("nan")) for run in raw.get("lifecycle", [])])
        for stage in (*STAGES, "total")
    }
    summary["startup"] = startup.summarize(raw.get("startup"), raw.get("lifecycle", []))
    summary["hostile"] = raw.get("hostile") or {}
    summary["metrics"] = _metrics(summary) | hostile.metrics(summary["hostile"])
    summary["targets"] = [
        {
            "target": name,
            "value": summary["metrics"].get(key, float("nan")),
            "bound": bound,
            "met": _met(op, key, bound, summary),
        }
        for name, key, op, bound in TARGETS
    ]
    return summary


def _errors(run: dict) -> int:
    return sum(
        x["latency"]["errors"] + sum(t["errors"] for t in x["throughput"].values()) for x in run["load"].values()
    )


def _ceiling(runs: list[dict]) -> dict:
    if not runs:
        return {}
    clients = sorted({int(c) for run in runs for c in run["throughput"]})
    return {
        "p50_ms": median([run["latency"]["p50_ms"] for run in runs]),
        "requests_per_s": {
            str(c): median([run["throughput"][str(c)]["requests_per_second"] for run in runs]) for c in clients
        },
    }


def _value(summary: dict, variant: str, *path: str) -> float:
    node = summary["servers"].get(variant)
    for part in path:
        if node is None:
            return float("nan")
        node = node.get(part)
    return float("nan") if node is None else node


def _ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else float("nan")


def _metrics(summary: dict) -> dict:
    """The targets' quantities: the worst case over the client counts measured."""
    clients = [str(c) for c in summary["clients"]]
    metrics = {}

    def worst(key: str, variant: str, peer: str, batch: str, lowest: bool = True) -> None:
        ratios = [
            _ratio(
                _value(summary, variant, "batches", batch, "throughput", c, "rows_per_s"),
                _value(summary, peer, "batches", batch, "throughput", c, "rows_per_s"),
            )
            for c in clients
        ]
        finite = [r for r in ratios if math.isfinite(r)]
        metrics[key] = (min(finite) if lowest else max(finite)) if finite else float("nan")

    if "1" in summary["servers"].get("project", {}).get("batches", {}):
        worst("single_row_throughput_vs_floor", "project", "floor", "1")
        worst("single_row_throughput_vs_mlflow", "project", "mlflow", "1")
        worst("single_row_throughput_vs_sync", "project", "sync", "1")
        metrics["single_row_p50_vs_floor"] = _ratio(
            _value(summary, "project", "batches", "1", "p50_ms"), _value(summary, "floor", "batches", "1", "p50_ms")
        )
    if "1000" in summary["servers"].get("project", {}).get("batches", {}):
        worst("batch_1000_rows_per_s_vs_naive", "project", "naive", "1000")
        worst("batch_1000_rows_per_s_vs_floor", "project", "floor", "1000")
    metrics["cold_start_s"] = _value(summary, "project", "cold_start_s")
    metrics["rss_per_worker_mb"] = _value(summary, "project", "rss_per_worker_mib") * 1.048576  # MiB → MB
    return metrics


def _met(op: str, key: str, bound: float, summary: dict) -> bool | None:
    value = summary["metrics"].get(key, float("nan"))
    if not math.isfinite(value):
        return None
    return value >= bound if op == ">=" else value <= bound


# --- tables ---------------------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) < 10 else f"{value:.1f}"


def table_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table: each server's value, then the project's ratios."""
    servers = list(summary["servers"])
    peers = [k for k in servers if k != "project"]
    ratio_columns = [(k, "floor") for k in servers if k != "floor"] + [("project", p) for p in peers if p != "floor"]
    header = ["metric", *servers, *(f"{a}/{b}" for a, b in ratio_columns)]
    rows = []

    def add(label: str, getter) -> None:
        values = {k: getter(k) for k in servers}
        ratios = [_ratio(values.get(a, float("nan")), values.get(b, float("nan"))) for a, b in ratio_columns]
        rows.append(
            [
                label,
                *(_fmt(values[k]) for k in servers),
                *(_fmt(r, 3) + "×" if math.isfinite(r) else "–" for r in ratios),
            ]
        )

    for batch in map(str, summary["batches"]):
        add(f"batch {batch}: p50 ms, 1 client", lambda k, b=batch: _value(summary, k, "batches", b, "p50_ms"))
        add(f"batch {batch}: p99 ms, 1 client", lambda k, b=batch: _value(summary, k, "batches", b, "p99_ms"))
        for c in map(str, summary["clients"]):
            add(
                f"batch {batch}: rows/s, {c} clients",
                lambda k, b=batch, c=c: _value(summary, k, "batches", b, "throughput", c, "rows_per_s"),
            )
    add("cold start s", lambda k: _value(summary, k, "cold_start_s"))
    add("RSS per worker MiB", lambda k: _value(summary, k, "rss_per_worker_mib"))
    add("PSS per worker MiB", lambda k: _value(summary, k, "pss_per_worker_mib"))
    add("RSS, all processes MiB", lambda k: _value(summary, k, "tree_rss_mib"))
    return header, rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """A fixed-width table."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def targets_lines(summary: dict) -> list[str]:
    """One line per target: value, bound and verdict."""
    verdicts = {True: "met", False: "NOT MET", None: "not measured"}
    return [f"{t['target']:<45} {_fmt(t['value'], 3):>8}   {verdicts[t['met']]}" for t in summary["targets"]]


def lifecycle_lines(summary: dict) -> list[str]:
    """Seconds per lifecycle stage."""
    life = summary["lifecycle"]
    if not any(math.isfinite(v) for v in life.values()):
        return ["lifecycle: not measured"]
    return [f"{stage:<12} {life[stage]:6.2f} s" for stage in (*STAGES, "total")]


def render(raw: dict, summary: dict) -> str:
    """Everything ``make bench`` prints at the end."""
    meta = raw["meta"]
    header, rows = table_rows(summary)
    ceiling = summary["ceiling"]
    lines = [
        "",
        f"servers: {', '.join(f'{k} = {LABELS[k]}' for k in summary['servers'])}",
        f"{meta['workers']} worker(s) each, 127.0.0.1 only; load generator {meta['generator']}; "
        f"medians of {meta['repetitions']} repetition(s); {meta['seconds']} s per load point",
        "",
        text_table(header, rows),
        "",
    ]
    if ceiling:
        rates = ", ".join(f"{_fmt(v)} req/s at {c} clients" for c, v in ceiling["requests_per_s"].items())
        lines.append(
            f"load generator ceiling (a do-nothing server): {rates}; p50 {_fmt(ceiling['p50_ms'])} ms with 1 client"
        )
    if summary["hostile"]:
        lines += ["", "valid single-row requests while other clients misbehave (bench/hostile.py):"]
        lines += [text_table(*hostile.table(summary["hostile"]))]
    lines += ["", "targets (issues 6, 17; ratios are the worst over the client counts):", *targets_lines(summary)]
    lines += ["", "lifecycle of `make run` (median seconds per stage):", *lifecycle_lines(summary)]
    return "\n".join([*lines, "", *startup_lines(summary["startup"])]) + "\n"


# --- CLI start-up ---------------------------------------------------------------------------------------


def startup_table(start: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the CLI start-up table: ratio to ``python -c pass``, seconds, spread, target, verdict."""
    header = ["command", "× python -c pass", "seconds (median)", "min–max", "runs", "target", "verdict"]
    verdicts = {True: "met", False: "NOT MET", None: "–"}
    rows = [
        [
            row["label"],
            f"{row['ratio']:.3g}×" if math.isfinite(row["ratio"]) else "–",
            _fmt(row["median_s"]),
            f"{_fmt(row['min_s'])}–{_fmt(row['max_s'])}" if row["runs"] else "–",
            str(row["runs"]),
            f"<= {row['target_s']:g} s" if row["target_s"] is not None else "baseline",
            verdicts[row["met"]] if row["runs"] else "not measured",
        ]
        for row in start["rows"]
    ]
    return header, rows


def _imports_line(start: dict) -> str:
    heavy = start["help_heavy"]
    verdict = "none of them" if heavy == [] else f"NOT MET: {', '.join(heavy or ['not measured'])}"
    return f"`--help` imports of {', '.join(startup.HEAVY)}: {verdict}"


def _slowest_line(start: dict, key: str) -> str:
    slowest = start["imports"].get(key, {}).get("slowest", [])
    found = ", ".join(f"{p} {_fmt(s)} s" for p, s in slowest) or "no third-party package over 1 ms"
    return f"slowest imports of `{key}` (-X importtime): {found}"


def startup_lines(start: dict) -> list[str]:
    """The printed CLI start-up section."""
    if not start:
        return ["CLI start-up: not measured"]
    header, rows = startup_table(start)
    return [
        f"CLI start-up and make run (medians of {start['rounds']} interleaved round(s); `models list` registry: "
        f"{start['registry']}; other processes used {_fmt(start['foreign_cpu_cores'])} cores meanwhile):",
        text_table(header, rows),
        _imports_line(start),
        *(_slowest_line(start, key) for key in (startup.HELP.key, startup.MODELS_LIST.key)),
        *(f"target missed: {key}" for key in start["missed"]),
    ]


def startup_markdown(raw: dict, start: dict) -> str:
    """The CLI start-up block of ``docs/performance.md``, between its own markers."""
    header, rows = startup_table(start)
    verdicts = {"met": "met", "NOT MET": "**not met**"}
    rows = [[*row[:-1], verdicts.get(row[-1], row[-1])] for row in rows]
    meta = raw["meta"]
    parts = [
        STARTUP_START,
        "**CLI start-up and `make run`** (ratios to `python -c pass` measured in the same run; medians of "
        f"{start['rounds']} interleaved rounds, measured {meta['finished']} on {meta['machine']}; other processes "
        f"used {_fmt(start['foreign_cpu_cores'])} cores meanwhile; the `models list` registry: {start['registry']})",
        "",
        markdown_table(header, rows),
        "",
        f"* {_imports_line(start).replace('NOT MET', '**not met**')}.",
        *(f"* {_slowest_line(start, key)}." for key in (startup.HELP.key, startup.MODELS_LIST.key)),
        STARTUP_END,
    ]
    return "\n".join(parts)


def _replace_between(text: str, start_marker: str, end_marker: str, block: str) -> str:
    start, end = text.index(start_marker), text.index(end_marker) + len(end_marker)
    return text[:start] + block + text[end:]


def update_startup_docs(path: Path, raw: dict, summary: dict) -> None:
    """Replace only the CLI start-up block of ``docs/performance.md`` (``python -m bench --only startup``).

    Where the page has no such block yet, it is added at the end of the results section.
    """
    text, block = path.read_text(), startup_markdown(raw, summary)
    if STARTUP_START not in text:
        text = text.replace(DOCS_END, f"\n{STARTUP_START}{STARTUP_END}\n{DOCS_END}")
    path.write_text(_replace_between(text, STARTUP_START, STARTUP_END, block))


def write_json(path: Path, raw: dict, summary: dict) -> None:
    """Raw measurements and their summary."""
    path.write_text(json.dumps({"raw": raw, "summary": summary}, indent=2, default=str, allow_nan=True))


def plot(path: Path, summary: dict) -> None:
    """Throughput, latency, cold start, memory and lifecycle stages as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = list(summary["servers"])
    batches = [str(b) for b in summary["batches"]]
    clients = [str(c) for c in summary["clients"]]
    figure, axes = plt.subplots(2, 3, figsize=(16, 9))
    width = 0.8 / max(1, len(servers))

    def grouped(ax, getter, title, ylabel, log=True):
        for i, key in enumerate(servers):
            xs = [j + i * width for j in range(len(batches))]
            ax.bar(xs, [getter(key, b) for b in batches], width, label=key)
        ax.set_xticks(
            [j + width * (len(servers) - 1) / 2 for j in range(len(batches))],
            [f"{b} row{'s' * (b != '1')}" for b in batches],
        )
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)

    for ax, c in zip(axes[0][:2], clients[:2], strict=False):
        grouped(
            ax,
            lambda k, b, c=c: _value(summary, k, "batches", b, "throughput", c, "rows_per_s"),
            f"throughput, {c} clients",
            "rows/s",
        )
    grouped(axes[0][2], lambda k, b: _value(summary, k, "batches", b, "p50_ms"), "p50 latency, 1 client", "ms")
    axes[1][0].bar(servers, [_value(summary, k, "cold_start_s") for k in servers], color="tab:orange")
    bounds = {key: (name, bound) for name, key, _, bound in TARGETS}
    name, bound = bounds["cold_start_s"]
    axes[1][0].axhline(bound, color="red", linestyle="--", linewidth=1, label=f"target: {name}")
    axes[1][0].legend(fontsize=8)
    axes[1][0].set_title("cold start (process start → healthy)")
    axes[1][0].set_ylabel("s")
    axes[1][1].bar(servers, [_value(summary, k, "rss_per_worker_mib") for k in servers], color="tab:green")
    name, bound = bounds["rss_per_worker_mb"]
    axes[1][1].axhline(bound / 1.048576, color="red", linestyle="--", linewidth=1, label=f"target: {name}")
    axes[1][1].legend(fontsize=8)
    axes[1][1].set_title("RSS per worker")
    axes[1][1].set_ylabel("MiB")
    life = summary["lifecycle"]
    stages = [s for s in STAGES if math.isfinite(life.get(s, float("nan")))]
    axes[1][2].barh(stages[::-1], [life[s] for s in stages[::-1]], color="tab:purple")
    axes[1][2].set_title(f"make run stages (total {_fmt(life.get('total', float('nan')))} s)")
    axes[1][2].set_xlabel("s")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def update_docs(path: Path, raw: dict, summary: dict, plot_file: Path) -> None:
    """Replace the results section of ``docs/performance.md`` (between its markers) with this run's.

    The plot goes beside it (``docs/performance.png``), where the page and notebook 03 show it.
    """
    shutil.copyfile(plot_file, path.with_suffix(".png"))
    meta = raw["meta"]
    header, rows = table_rows(summary)
    life = summary["lifecycle"]
    ceiling = summary["ceiling"]
    parts = [
        DOCS_START,
        f"Measured {meta['finished']} on {meta['machine']}; {meta['workers']} worker(s) per server; "
        f"load generator `{meta['generator']}`; medians of {meta['repetitions']} repetitions; "
        f"{meta['seconds']} s per load point.",
        "",
        markdown_table(header, rows),
        "",
        f"![make bench: throughput, latency, cold start, memory and make run stages]({path.with_suffix('.png').name})",
        "",
    ]
    if ceiling:
        rates = ", ".join(f"{_fmt(v)} req/s at {c} clients" for c, v in ceiling["requests_per_s"].items())
        parts += [f"Load generator ceiling (a do-nothing server): {rates}; p50 {_fmt(ceiling['p50_ms'])} ms.", ""]
    if summary["hostile"]:
        parts += ["Valid single-row requests while other clients misbehave (`bench/hostile.py`):", ""]
        parts += [markdown_table(*hostile.table(summary["hostile"])), ""]
    parts += ["| target | measured | verdict |", "|---|---:|---|"]
    verdicts = {True: "met", False: "**not met**", None: "not measured"}
    parts += [f"| {t['target']} | {_fmt(t['value'])} | {verdicts[t['met']]} |" for t in summary["targets"]]
    parts += ["", "| `make run` stage | seconds (median) |", "|---|---:|"]
    parts += [f"| {stage} | {_fmt(life[stage])} |" for stage in (*STAGES, "total")]
    if summary["startup"]:
        parts += ["", startup_markdown(raw, summary["startup"])]
    parts.append(DOCS_END)
    path.write_text(_replace_between(path.read_text(), DOCS_START, DOCS_END, "\n".join(parts)))
