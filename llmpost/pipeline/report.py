"""The run summary: a terminal table, and a run record in the store (report.md, summary.json, a plot).

The run record is an artifact named `run-<recipe>` whose parents are every stage's
artifact, so `llmpost lineage run-<recipe>` shows the whole flow. It holds:

    report.md           each stage's artifact ref, status, wall time and held-out metrics side by side
    summary.json        the same, for scripts
    recipe.yaml         the recipe as read, with the overrides it ran with
    plots/exact_match.png   held-out exact match per stage: where it started and where it ended

Exact match comes with its 95% interval, and the change from the stage's start model with
the stage's paired interval (`evaluation/report.py`), where the stage recorded them.

A rerun that reuses every stage reuses the record too (same stage artifacts, same record).

A run of several seeds (`pipeline/seeds.py`) writes one record for them all: per stage, each
seed's row as above, then the mean over seeds of exact match and of the change, the change with
a 95% interval from a two-way bootstrap over seeds and held-out items (`evaluation/seeds.py`).
summary.json then holds `seeds`, `stages` (one row per stage and seed, with its `seed`) and
`over_seeds` (one row per stage).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llmpost.artifacts.manifest import package_versions, sha256_json
from llmpost.artifacts.store import Artifact, Store
from llmpost.evaluation.report import rounded
from llmpost.evaluation.seeds import common_items, item_values, seeds_interval, seeds_mean
from llmpost.pipeline.decisions import Decision
from llmpost.reporting.key_metrics import key_metric

HEADLINE = ("exact_match", "exact_match_before")
INTERVALS = ("exact_match_ci", "exact_match_delta", "exact_match_delta_ci")
NOT_HELD_OUT = {"steps", "n_eval", "train_loss", *HEADLINE, *INTERVALS}
ACTION_STYLE = {"reuse": "green", "resume": "yellow", "run": "bold", "skip": "dim"}


def record_name(recipe_name: str) -> str:
    return f"run-{recipe_name}"


def summary_rows(result) -> list[dict[str, Any]]:
    """One dict per stage of the run: ref, status, wall time, start model and held-out metrics."""
    ids_by_ref = {run.artifact.ref: run.id for run in result.stages}
    rows = []
    for run in result.stages:
        manifest = run.artifact.manifest
        metrics = manifest.get("metrics") or {}
        model = (manifest.get("config") or {}).get("model")
        rows.append({
            "id": run.id,
            "uses": run.uses,
            "ref": run.artifact.ref,
            "status": run.status,
            "wall_time_s": manifest.get("wall_time_s"),
            "device": manifest.get("device"),
            "resumed_from_step": manifest.get("resumed_from_step"),
            "start": ids_by_ref.get(model, model),
            "exact_match": metrics.get("exact_match"),
            "exact_match_before": metrics.get("exact_match_before"),
            **{key: metrics.get(key) for key in INTERVALS},
            "metrics": {k: v for k, v in metrics.items() if k not in NOT_HELD_OUT and is_number(v)},
        })
    return rows


def plan_table(plan: list[Decision], title: str) -> Table:
    """The plan: per stage, what will happen and why."""
    table = Table(title=title, title_justify="left")
    for name, kw in (("stage", {"no_wrap": True}), ("uses", {}), ("artifact", {}), ("action", {"no_wrap": True}),
                     ("reason", {})):
        table.add_column(name, **kw)
    for d in plan:
        target = d.artifact.ref if d.artifact is not None else d.out
        style = ACTION_STYLE.get(d.action, "")
        table.add_row(d.id, d.uses, target, f"[{style}]{d.action}[/{style}]" if style else d.action, d.reason)
    return table


def summary_table(result) -> Table:
    """The terminal summary: every stage's artifact, status, time and held-out exact match with its change.

    One stage a line at 80 columns (`stage_table`); each stage's other metrics are in report.md.
    """
    counts = {status: sum(r.status == status for r in result.stages) for status in ("ran", "resumed", "reused")}
    counts.update(failed=len(result.failed), skipped=len(result.blocked))
    title = f"run `{result.recipe.name}` in {duration(result.wall_time_s)}: " + ", ".join(
        f"{n} {status}" for status, n in counts.items() if n)
    if result.record is not None:
        title += f"  (report: {result.record.ref})"
    rows = {row["id"]: row for row in summary_rows(result)}
    table = stage_table(title, list(rows.values()), failed=result.failed, blocked=result.blocked)
    for sid, spec in result.recipe.stages.items():
        if sid in rows:
            row = rows[sid]
            table.add_row(artifact_cell(row["ref"]), row["status"], duration(row["wall_time_s"]),
                          number(row["exact_match"]), change_text(row))
        elif sid in result.failed:
            table.add_row(artifact_cell(spec.out), "[bold red]failed[/bold red]", "", "", "-")
        elif sid in result.blocked:
            table.add_row(artifact_cell(spec.out), "[yellow]skipped[/yellow]", "", "", "-")
    return table


def stage_table(title: str, rows: list[dict[str, Any]], failed: dict[str, BaseException],
                blocked: dict[str, str]) -> Table:
    """The run summary's columns, one stage a line at 80 columns: artifact, status, time, exact match, vs start.

    A 31-character ref and a change with its interval (`+0.095 [+0.050, +0.140]`) fit beside the rest.
    The figures are never wrapped nor cut; when a line is too long, the ref is cut short (`…`). Where
    each stage started, failures and skips go under the table (its caption), where they can wrap.
    """
    notes = [starts_text(rows), *map(key_figure_text, key_figures(rows)), devices_text(rows),
             *(f"{sid} failed: {first_line(exc)}" for sid, exc in failed.items()),
             *(f"{sid} skipped: needs `{need}`" for sid, need in blocked.items())]
    caption = escape("\n".join(note for note in notes if note)) or None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("artifact")  # the one column rich may narrow; its cells are cut, never wrapped
    table.add_column("status", no_wrap=True)
    table.add_column("time", no_wrap=True, justify="right")
    table.add_column("exact\nmatch", no_wrap=True, justify="right")
    table.add_column("vs start", no_wrap=True, justify="right")
    return table


def artifact_cell(ref: str, style: str = "") -> Text:
    return Text(ref, style=style, no_wrap=True, overflow="ellipsis")


def key_figures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stages with no held-out exact match, each with its key metric (`reporting/key_metrics.py`): a
    reward model's pairwise accuracy, a judge's agreement with the truth. Per stage: `metric`, `values`
    (one per seed, in the rows' order) and their `mean`. Stages with neither (an SFT run without its
    evaluation) are left out."""
    figures: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = key_metric(row["uses"], row["metrics"]) if row["exact_match"] is None else None
        if key is not None:
            figures.setdefault(row["id"], {"id": row["id"], "metric": key, "values": []})["values"].append(
                row["metrics"][key])
    for figure in figures.values():
        figure["mean"] = round(sum(figure["values"]) / len(figure["values"]), 4)
    return list(figures.values())


def key_figure_text(figure: dict[str, Any]) -> str:
    """`rm accuracy: 0.782` for one seed; `rm accuracy: 0.782, 0.785, 0.870 (mean 0.812)` for several."""
    values = ", ".join(number(v) for v in figure["values"])
    mean = f" (mean {number(figure['mean'])})" if len(figure["values"]) > 1 else ""
    return f"{figure['id']} {figure['metric']}: {values}{mean}"


def starts_text(rows: list[dict[str, Any]]) -> str:
    """What `vs start` is, with the model each stage started from: `(sft from tiny; dpo, ppo from sft)`."""
    by_start: dict[str, list[str]] = {}
    for row in rows:
        if change_text(row) != "-" and row["id"] not in by_start.get(str(row["start"]), []):
            by_start.setdefault(str(row["start"]), []).append(row["id"])
    if not by_start:
        return ""
    starts = "; ".join(f"{', '.join(ids)} from {start}" for start, ids in by_start.items())
    return f"vs start: the change in exact match from the stage's start ({starts}), with its 95% interval"


def devices_text(rows: list[dict[str, Any]]) -> str:
    """Where the times were measured: `times on cpu (AMD EPYC, x86_64, 2 cores, AVX2)`.

    A reused stage keeps the time (and machine) of the run that made it, so a store filled on
    two machines says which stage ran where: `times on A (sft, rm); B (ppo)`.
    """
    by_device: dict[str, list[str]] = {}
    for row in rows:
        if not row.get("device"):
            continue  # a manifest without one
        ids = by_device.setdefault(row["device"], [])
        if row["id"] not in ids:  # several seeds: one stage, several rows
            ids.append(row["id"])
    if not by_device:
        return ""
    if len(by_device) == 1:
        return f"times on {next(iter(by_device))}"
    return "times on " + "; ".join(f"{device} ({', '.join(ids)})" for device, ids in by_device.items())


def devices_note(rows: list[dict[str, Any]]) -> list[str]:
    """report.md's paragraph on where the wall times were measured (none for manifests without a device)."""
    where = devices_text(rows)
    return ["", f"Wall {where}: a reused stage shows the time of the run that made it."] if where else []


def write_run_record(result, store: Store) -> tuple[Artifact, bool]:
    """Write (or reuse an identical) `run-<recipe>` record; returns it and whether it was reused."""
    recipe = result.recipe
    name = record_name(recipe.name)
    fingerprint = sha256_json({"recipe": recipe.name, "stages": [[r.id, r.artifact.id] for r in result.stages]})
    found = store.find_by_fingerprint(name, fingerprint)
    if found is not None:
        return found, True
    rows = summary_rows(result)
    with store.begin(name) as pending:
        (pending.dir / "summary.json").write_text(json.dumps({"recipe": recipe.name, "stages": rows}, indent=2))
        (pending.dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.source, sort_keys=False))
        plot = plot_exact_match(rows, pending.dir / "plots" / "exact_match.png")
        (pending.dir / "report.md").write_text(markdown_report(recipe, rows, plot is not None))
        fields = {
            "stage": "run",
            "config": {"recipe": recipe.name, "path": str(recipe.path) if recipe.path else None,
                       "stages": {r["id"]: r["ref"] for r in rows}},
            "parents": [run.artifact.as_parent() for run in result.stages],
            "metrics": {f"{r['id']}.exact_match": r["exact_match"] for r in rows if r["exact_match"] is not None},
            "wall_time_s": round(sum(r["wall_time_s"] or 0 for r in rows), 2),
            "fingerprint": fingerprint,
            "versions": package_versions(),
        }
        return pending.finalize(fields), False


def markdown_report(recipe, rows: list[dict[str, Any]], has_plot: bool) -> str:
    """report.md: the side-by-side table, the plot, and every stage's held-out metrics."""
    lines = [f"# Run `{recipe.name}`", ""]
    if recipe.description:
        lines += [recipe.description.strip(), ""]
    lines += ["| stage | uses | artifact | status | wall time | exact match | vs start |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['id']} | {r['uses']} | `{r['ref']}` | {r['status']} | {duration(r['wall_time_s'])} "
                     f"| {number(r['exact_match'])}{interval_text(r.get('exact_match_ci'), signed=False)} "
                     f"| {versus(r)} |")
    lines.append("")
    lines.append("*vs start*: the change in held-out exact match from the model the stage started from "
                 "(measured by the stage itself, on the same held-out rows). In brackets, 95% intervals: "
                 "Wilson for exact match; for the change, a paired bootstrap over the held-out items. "
                 "A change whose interval holds 0 is not distinguishable from no change on these items.")
    lines += devices_note(rows)
    if has_plot:
        lines += ["", "![held-out exact match per stage](plots/exact_match.png)"]
    if any(r["metrics"] for r in rows):
        lines += ["", "## Each stage's metrics", "", "| stage | metrics |", "|---|---|"]
        lines += [f"| {r['id']} | {metric_text(r['metrics'], sep=', ')} |" for r in rows if r["metrics"]]
    lines += ["", "## Reproduce", "", "```",
              f"llmpost run {recipe.path or '<recipe>.yaml'}" + overrides_text(recipe), "```", "",
              "Each artifact's manifest.json records its full config, inputs and library versions; "
              f"`llmpost lineage {record_name(recipe.name)}` shows the graph.", ""]
    return "\n".join(lines)


def overrides_text(recipe) -> str:
    """The command-line overrides the run was given, as they would be typed again."""
    sets = recipe.source.get("overrides", {}).get("--set") or {}
    config_file = recipe.source.get("config_file")
    flat = [f" --config {config_file}"] if config_file else []

    def walk(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else k)
        else:
            flat.append(f" --set {path}={json.dumps(value) if not isinstance(value, str) else value}")

    walk(sets, "")
    return "".join(flat)


def plot_exact_match(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Bars of held-out exact match per stage: at its start (light) and after it (dark, with its 95% interval)."""
    shown = [r for r in rows if is_number(r["exact_match"])]
    if not shown:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    x = range(len(shown))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(shown) + 1.5), 3.5))
    before = [r["exact_match_before"] if is_number(r["exact_match_before"]) else 0.0 for r in shown]
    ax.bar([i - 0.2 for i in x], before, width=0.4, color="#b8c7e0", label="start")
    after, intervals = [r["exact_match"] for r in shown], [r.get("exact_match_ci") for r in shown]
    has_intervals = any(interval_text(i) for i in intervals)  # artifacts written before intervals have none
    ax.bar([i + 0.2 for i in x], after, width=0.4, color="#2b5797", label="after stage",
           yerr=error_bars(after, intervals) if has_intervals else None, capsize=3, ecolor="#555555")
    ax.set_xticks(list(x), [r["id"] for r in shown], rotation=20, ha="right")
    ax.set_ylabel("held-out exact match")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def error_bars(values: list[float], intervals: list[Any]) -> list[list[float]]:
    """matplotlib's yerr (distances below and above each value) for 95% intervals; 0 where there is none."""
    below, above = [], []
    for value, interval in zip(values, intervals, strict=True):
        low, high = interval if interval_text(interval) else (value, value)
        below.append(value - low)
        above.append(high - value)
    return [below, above]


def first_line(exc: BaseException, limit: int = 120) -> str:
    """The start of an error's message, short enough for a table cell or a progress line."""
    text = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).splitlines()[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def versus(row: dict[str, Any]) -> str:
    """The change in exact match from the start model, with its paired interval, and the start model."""
    change = change_text(row)
    return change if change == "-" else f"{change} (from {row['start']})"


def change_text(row: dict[str, Any]) -> str:
    """The change in exact match from the start model, with its paired interval when the stage recorded one."""
    after, before = row["exact_match"], row["exact_match_before"]
    if not (is_number(after) and is_number(before)):
        return "-"
    delta = row.get("exact_match_delta")
    delta = delta if is_number(delta) else after - before  # an artifact written before deltas were recorded
    return f"{delta:+.3f}{interval_text(row.get('exact_match_delta_ci'))}"


def interval_text(interval: Any, signed: bool = True) -> str:
    """` [low, high]`, or nothing when there is no interval."""
    if not (isinstance(interval, list | tuple) and len(interval) == 2 and all(map(is_number, interval))):
        return ""
    sign = "+" if signed else ""
    return f" [{interval[0]:{sign}.3f}, {interval[1]:{sign}.3f}]"


def metric_text(metrics: dict[str, Any], sep: str = "  ") -> str:
    return sep.join(f"{k}={number(v)}" for k, v in metrics.items()) or "-"


def number(value: Any) -> str:
    if not is_number(value):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def duration(seconds: Any) -> str:
    if not is_number(seconds):
        return "-"
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- several seeds (pipeline/seeds.py) ------------------------------------------------------------


def seed_rows(result) -> list[dict[str, Any]]:
    """Every seed's summary rows (`summary_rows`), each with its seed."""
    return [{"seed": seed, **row} for seed, run in result.runs.items() for row in summary_rows(run)]


def over_seeds(result) -> list[dict[str, Any]]:
    """Per stage: exact match, where it started and the change from there, as means over the seeds; the
    change with its 95% interval from the two-way bootstrap over seeds and items (`evaluation/seeds.py`).

    Read off each seed's eval_items.jsonl, on the items every seed has (None when they share none). The
    mean exact match has no interval: a percentile bootstrap of a rate collapses to a point at 0 or 1,
    where small models often are (each seed's own row keeps its Wilson interval).
    """
    starts = {(row["seed"], row["id"]): row["start"] for row in seed_rows(result)}
    rows = []
    for sid, spec in result.recipe.stages.items():
        runs = [(seed, stage) for seed, run in result.runs.items() for stage in run.stages if stage.id == sid]
        if not runs:
            continue
        values = [item_values(stage.artifact.path) for _, stage in runs]
        after, before, change = ([v[key] for v in values] for key in ("after", "before", "change"))
        start = {starts[(seed, sid)] for seed, _ in runs}
        rows.append({
            "id": sid, "uses": spec.uses, "seeds": [seed for seed, _ in runs],
            "start": start.pop() if len(start) == 1 else None,
            "exact_match": seeds_mean(after),
            "exact_match_before": seeds_mean(before),
            "exact_match_delta": seeds_mean(change),
            "exact_match_delta_ci": rounded(seeds_interval(change)),
            "n_items": len(common_items(after)),
        })
    return rows


def seeds_summary_table(result) -> Table:
    """The terminal summary of several seeds: per stage, each seed's row, then the mean over seeds."""
    statuses = [row.status for run in result.runs.values() for row in run.stages]
    counts = {status: statuses.count(status) for status in ("ran", "resumed", "reused")}
    counts.update(failed=sum(len(run.failed) for run in result.runs.values()),
                  skipped=sum(len(run.blocked) for run in result.runs.values()))
    title = (f"run `{result.recipe.name}`, seeds {seeds_text(result.seeds)}, in {duration(result.wall_time_s)}: "
             + ", ".join(f"{n} {status}" for status, n in counts.items() if n))
    if result.record is not None:
        title += f"  (report: {result.record.ref})"
    rows = seed_rows(result)
    table = stage_table(title, rows, failed=result.failed,
                        blocked={f"{sid} (seed {seed})": need for seed, run in result.runs.items()
                                 for sid, need in run.blocked.items()})
    per_seed = {(row["seed"], row["id"]): row for row in rows}
    means = {row["id"]: row for row in result.means}
    for sid in result.recipe.stages:
        shown = set()  # a stage without a seed is one artifact for every seed: one line
        for seed, run in result.runs.items():
            row = per_seed.get((seed, sid))
            if row is not None and row["ref"] not in shown:
                shown.add(row["ref"])
                table.add_row(artifact_cell(row["ref"]), row["status"], duration(row["wall_time_s"]),
                              number(row["exact_match"]), change_text(row))
            elif sid in run.failed:
                table.add_row(artifact_cell(run.recipe.stages[sid].out), "[bold red]failed[/bold red]", "", "", "-")
            elif sid in run.blocked:
                table.add_row(artifact_cell(run.recipe.stages[sid].out), "[yellow]skipped[/yellow]", "", "", "-")
        if sid in means:
            mean = means[sid]
            table.add_row(artifact_cell(f"{sid}: mean of {len(mean['seeds'])} seeds", style="bold"), "", "",
                          f"[bold]{number(mean['exact_match'])}[/bold]", f"[bold]{change_text(mean)}[/bold]",
                          end_section=True)
    return table


def write_seeds_record(result, store: Store) -> tuple[Artifact, bool]:
    """Write (or reuse an identical) `run-<recipe>` record of every seed; returns it and whether it was reused."""
    recipe = result.recipe
    name = record_name(recipe.name)
    stages = [(seed, stage) for seed, run in result.runs.items() for stage in run.stages]
    fingerprint = sha256_json({"recipe": recipe.name, "seeds": result.seeds,
                               "stages": [[seed, s.id, s.artifact.id] for seed, s in stages]})
    found = store.find_by_fingerprint(name, fingerprint)
    if found is not None:
        return found, True
    rows, means, figures = seed_rows(result), result.means, key_figures(seed_rows(result))
    with store.begin(name) as pending:
        (pending.dir / "summary.json").write_text(json.dumps(
            {"recipe": recipe.name, "seeds": result.seeds, "stages": rows, "over_seeds": means,
             "key_figures": figures}, indent=2))
        (pending.dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.source, sort_keys=False))
        plot = plot_exact_match(means, pending.dir / "plots" / "exact_match.png")
        (pending.dir / "report.md").write_text(markdown_seeds_report(result, rows, means, plot is not None))
        fields = {
            "stage": "run",
            "config": {"recipe": recipe.name, "path": str(recipe.path) if recipe.path else None, "seeds": result.seeds,
                       "stages": {f"{r['id']}@seed{r['seed']}": r["ref"] for r in rows}},
            "parents": list({s.artifact.id: s.artifact.as_parent() for _, s in stages}.values()),
            "metrics": {**{f"{m['id']}.{key}": m[key] for m in means for key in ("exact_match", "exact_match_delta")
                           if m[key] is not None},
                        **{f"{f['id']}.{f['metric']}": f["mean"] for f in figures}},
            "wall_time_s": round(sum(r["wall_time_s"] or 0 for r in rows), 2),
            "fingerprint": fingerprint,
            "versions": package_versions(),
        }
        return pending.finalize(fields), False


def markdown_seeds_report(result, rows: list[dict[str, Any]], means: list[dict[str, Any]], has_plot: bool) -> str:
    """report.md of several seeds: each seed's row per stage, then the mean over seeds with its interval."""
    recipe = result.recipe
    lines = [f"# Run `{recipe.name}`, seeds {seeds_text(result.seeds)}", ""]
    if recipe.description:
        lines += [recipe.description.strip(), ""]
    lines += ["| stage | seed | artifact | status | wall time | exact match | vs start |",
              "|---|---|---|---|---|---|---|"]
    by_stage = {m["id"]: m for m in means}
    for sid in recipe.stages:
        for r in (r for r in rows if r["id"] == sid):
            lines.append(f"| {sid} | {r['seed']} | `{r['ref']}` | {r['status']} | {duration(r['wall_time_s'])} "
                         f"| {number(r['exact_match'])}{interval_text(r.get('exact_match_ci'), signed=False)} "
                         f"| {versus(r)} |")
        if sid in by_stage:
            mean = by_stage[sid]
            lines.append(f"| **{sid}** | **mean of {len(mean['seeds'])}** | | | | **{number(mean['exact_match'])}** "
                         f"| **{versus(mean)}** |")
    lines += ["", "Each seed is the whole flow with every stage's `seed` set to it. *vs start*: the change in held-out "
              "exact match from the model the stage started from, on the same held-out rows. Per seed, in brackets: "
              "its 95% intervals (Wilson for exact match; a paired bootstrap over the held-out items for the change). "
              "*mean*: the mean over seeds; for the change, a 95% interval from a two-way bootstrap that resamples the "
              "seeds and the held-out items, so it holds both the item noise and the seed-to-seed variation. A mean "
              "change whose interval holds 0 is not distinguishable from no change."]
    lines += devices_note(rows)
    figures = key_figures(rows)
    if figures:
        lines += ["", "Stages without held-out exact match, by their key metric:", "",
                  "| stage | metric | " + " | ".join(f"seed {s}" for s in result.seeds) + " | mean |",
                  "|---|---|" + "---|" * (len(result.seeds) + 1)]
        lines += [f"| {f['id']} | {f['metric']} | " + " | ".join(number(v) for v in f["values"])
                  + f" | **{number(f['mean'])}** |" for f in figures if len(f["values"]) == len(result.seeds)]
    if has_plot:
        lines += ["", "![held-out exact match per stage, mean over seeds](plots/exact_match.png)"]
    seeds_flag = "" if recipe.seeds == result.seeds else f" --seeds {','.join(map(str, result.seeds))}"
    lines += ["", "## Reproduce", "", "```",
              f"llmpost run {recipe.path or '<recipe>.yaml'}{seeds_flag}" + overrides_text(recipe), "```", "",
              "Each artifact's manifest.json records its full config, inputs and library versions; "
              f"`llmpost lineage {record_name(recipe.name)}` shows the graph.", ""]
    return "\n".join(lines)


def seeds_text(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds))
