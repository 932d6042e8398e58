"""The refinement report: documents and words in and out of every stage, removals by reason, as
``report.json`` and as a picture (``report.png``), from the per-stage event counts a run wrote.

Per stage: ``documents_in`` / ``documents_out`` (for ``read``: archive records and pages),
``words_in`` / ``words_out`` (whitespace words; 0 before extraction, where there is only HTML),
``removed`` (documents by reason) and, where a stage edits documents instead of removing them
(line corrections, exact substrings), ``documents_edited``.

Example:
    >>> print(format_report(json.load(open("refined/report.json"))))      # doctest: +SKIP
"""
from __future__ import annotations

import collections
import json
import os
from typing import Any, Dict, List

from apache_beam.io.filesystems import FileSystems

from rw_tf.refine.stages import STAGES

KEPT = ("kept", "spans_removed")


def _read_events(output_dir: str) -> List[Dict]:
    events = []
    for match in FileSystems.match([os.path.join(output_dir, "events", "events*.jsonl")])[0].metadata_list:
        with FileSystems.open(match.path) as f:
            events += [json.loads(line) for line in f if line.strip()]
    return events


def stage_table(events: List[Dict]) -> List[Dict[str, Any]]:
    by_stage: Dict[str, List[Dict]] = collections.defaultdict(list)
    for event in events:
        by_stage[event["stage"]].append(event)
    table = []
    for stage in STAGES:
        rows = by_stage.get(stage)
        if not rows:
            continue
        kept = [r for r in rows if r["outcome"] in KEPT]
        removed = {r["outcome"]: r["documents"] for r in rows if r["outcome"] not in KEPT}
        entry = {"stage": stage, "documents_in": sum(r["documents"] for r in rows),
                 "documents_out": sum(r["documents"] for r in kept),
                 "words_in": sum(r["words_in"] for r in rows), "words_out": sum(r["words_out"] for r in kept),
                 "removed": dict(sorted(removed.items(), key=lambda kv: -kv[1]))}
        if stage == "exact_substring_dedup":
            entry["documents_edited"] = sum(r["documents"] for r in rows if r["outcome"] == "spans_removed")
        table.append(entry)
    return table


def format_report(report: Dict[str, Any]) -> str:
    lines = [f"{'stage':<22} {'docs in':>8} {'docs out':>8} {'words in':>10} {'words out':>10}  removed (top reasons)"]
    for s in report["stages"]:
        reasons = ", ".join(f"{k} {v}" for k, v in list(s["removed"].items())[:3])
        lines.append(f"{s['stage']:<22} {s['documents_in']:>8,} {s['documents_out']:>8,} {s['words_in']:>10,} "
                     f"{s['words_out']:>10,}  {reasons}")
    return "\n".join(lines)


def plot_report(report: Dict[str, Any], path: str) -> None:
    """Documents and words kept at each stage, with each stage's main removal reasons."""
    import matplotlib  # only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = report["stages"]
    names = [s["stage"] for s in stages][::-1]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.55 * len(stages) + 1.6), sharey=True)
    for ax, unit in zip(axes, ("documents", "words")):
        kept = [s[f"{unit}_out"] for s in stages][::-1]
        before = [s[f"{unit}_in"] for s in stages][::-1]
        ax.barh(names, before, color="#d9d9d9", label=f"{unit} in")
        ax.barh(names, kept, color="#3b75af", label=f"{unit} out")
        for y, (b, k) in enumerate(zip(before, kept)):
            if b:
                ax.text(max(b, k), y, f" {k:,} / {b:,}", va="center", fontsize=7)
        ax.set_xlabel(unit)
        ax.legend(loc="lower right", fontsize=7)
    for y, s in enumerate(stages[::-1]):
        reasons = ", ".join(f"{k} {v}" for k, v in list(s["removed"].items())[:2])
        if reasons:
            axes[0].text(0, y - 0.38, "  " + reasons, fontsize=6, color="#7f2704", va="center")
    fig.suptitle(f"MacroData Refinement: {stages[0]['documents_in']:,} records in, "
                 f"{stages[-1]['documents_out']:,} documents out", fontsize=10)
    fig.tight_layout()
    with FileSystems.create(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def write_report(output_dir: str, **extra: Any) -> Dict[str, Any]:
    """Builds the report from ``output_dir/events``, writes report.json and report.png, returns it."""
    report = {**extra, "stages": stage_table(_read_events(output_dir))}
    with FileSystems.create(os.path.join(output_dir, "report.json")) as f:
        f.write(json.dumps(report, indent=2).encode("utf-8"))
    if report["stages"]:
        plot_report(report, os.path.join(output_dir, "report.png"))
    return report
