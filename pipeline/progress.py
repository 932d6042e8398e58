"""Quiet, useful output for long pipeline runs.

``quiet_output(log_path)`` (``rw_tf.cli.output``) sends everything libraries print (absl INFO for
every MLMD call, Beam worker output, Keras progress of the Trainer) to a log file.
``ComponentProgress`` turns the LocalDagRunner's "Component X is running/finished" log records into
one terminal line per component with its status and seconds; ``summary_table`` formats the end.

Example:
    >>> with quiet_output("/tmp/run.log") as terminal:        # doctest: +SKIP
    ...     ComponentProgress.attach(terminal); LocalDagRunner().run(pipeline)
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Dict, Iterator, List, Optional, TextIO

from absl import logging as absl_logging


class ComponentProgress(logging.Handler):
    """Prints ``  <component>  running`` / ``  <component>  done (cached) 12.3 s`` lines."""

    def __init__(self, out: TextIO, prefix: str = "") -> None:
        super().__init__(level=logging.INFO)
        self.out, self.prefix = out, prefix
        self.started: Dict[str, float] = {}
        self.cached: set = set()
        self.current: Optional[str] = None
        self.finished: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.msg if isinstance(record.msg, str) else ""
        if message == "Component %s is running." and record.args:
            self.current = str(record.args[0])
            self.started[self.current] = time.monotonic()
            self._print(f"{self.current:<34} running")
        elif message.startswith("A cached execution") and self.current:
            self.cached.add(self.current)
        elif message == "Component %s is finished." and record.args:
            name = str(record.args[0])
            seconds = time.monotonic() - self.started.get(name, time.monotonic())
            status = "cached" if name in self.cached else "done"
            self.finished.append(name)
            self._print(f"{name:<34} {status:<7} {seconds:6.1f} s")

    def failed(self) -> None:
        if self.current and self.current not in self.finished:
            seconds = time.monotonic() - self.started.get(self.current, time.monotonic())
            self._print(f"{self.current:<34} FAILED  {seconds:6.1f} s")

    def _print(self, text: str) -> None:
        self.out.write(f"{self.prefix}{text}\n")
        self.out.flush()

    @contextlib.contextmanager
    def attached(self) -> Iterator["ComponentProgress"]:
        logger = absl_logging.get_absl_logger()
        previous = logger.level
        absl_logging.set_verbosity(absl_logging.INFO)  # the runner's progress records are INFO
        logger.addHandler(self)
        try:
            yield self
        except BaseException:
            self.failed()
            raise
        finally:
            logger.removeHandler(self)
            logger.setLevel(previous)


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"


def left_out_text(left_out: Dict[str, int]) -> str:
    """``left_out`` (PrepareData's counts by reason) as a phrase, the most frequent reason first."""
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(left_out.items(), key=lambda x: -x[1]))
    return f"{sum(left_out.values()):,} rows left out by PrepareData ({reasons})"


def summary_table(summaries: Dict[str, Dict]) -> str:
    """One row per trained pipeline stage: blessed, gate metric vs. bound, pushed version and path,
    rejects (ExampleGen's lines and PrepareData's rows); below the table a line per stage says why
    it was not blessed (TFMA's failed thresholds) and why PrepareData left rows out; a refinement
    step first, as one line with its counts and report."""
    copied = " (copied: the web files and settings of an earlier run)"
    lines = [f"refinement: {s['records_read']:,} web records read -> {s['documents']:,} documents, "
             f"{s['words']:,} words{copied if s.get('copied') else ''} (report: {s['report']})\n"
             for s in summaries.values() if s.get("refinement")]
    rows = [("pipeline", "blessed", "gate metric", "value", "bound", "pushed version", "rejected", "path")]
    notes = []
    for kind, s in summaries.items():
        if s.get("refinement"):
            continue
        left_out = s.get("rows_rejected_by_prepare_data") or {}
        rejected = None if s["rejected_lines"] is None and not left_out else (s["rejected_lines"] or 0) + sum(
            left_out.values())
        if not s["blessed"] and s.get("gate_failures"):
            notes.append(f"\n{kind}: not blessed: {'; '.join(s['gate_failures'])}")
        if left_out:
            notes.append(f"\n{kind}: {left_out_text(left_out)}; report: {s['data_report']}")
        for i, (metric, gate) in enumerate(s["gate"].items()):
            first = i == 0
            rows.append((kind if first else "", ("yes" if s["blessed"] else "NO") if first else "", metric,
                         _number(gate["value"]), f">= {gate['lower_bound']:g}",
                         (s["pushed_version"] or "-") if first else "",
                         (f"{rejected:,}" if rejected is not None else "-") if first else "",
                         (s["pushed_destination"] or "not pushed") if first else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
    return "".join(lines) + (table if len(rows) > 1 else "") + "".join(notes)
