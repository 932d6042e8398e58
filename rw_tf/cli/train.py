"""``rw-tf pretrain`` and ``rw-tf finetune --task ...``: a task, a ``TrainerConfig``, the runner.

Task options and trainer options are the fields of the task's config dataclass and of
``TrainerConfig`` (``rw_tf.cli.options``); unset options take the task's defaults, and an option
that belongs to another task is an error.
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict

from rw_tf.cli.options import add_config_options, flag_name, set_values
from rw_tf.errors import UserError
from rw_tf.tasks import TASKS, PretrainingTask
from rw_tf.training.runner import TrainerConfig, run_task

FINETUNE_TASKS = ("classification", "retrieval", "qa", "sentence_embedding", "recommendation",
                  "image_text")


# What the tasks' data reports call the inputs they left out (by reason); shown, not only in metrics.json.
REJECT_KEYS = ("rejected_rows", "rejected_images", "rejected_aliases", "removed", "removed_before_split",
               "dropped_while_splitting", "corpus_drops")


def summary(result: Dict[str, Any]) -> str:
    keys = ("task", "before", "after", "details", "train_seconds", "resumed_from_step", "model_path", "export_dir")
    shown = {k: result[k] for k in keys if result.get(k) not in (None, {})}
    if result.get("chief") is False:
        shown["outputs"] = "none on this worker: the chief worker writes model.keras, the export and metrics.json"
    data = result.get("data") or {}
    left_out = {k: data[k] for k in REJECT_KEYS if isinstance(data.get(k), dict) and any(data[k].values())}
    return json.dumps({**shown, **({"left_out": left_out} if left_out else {})}, indent=2, default=float)


def train(task_class, args: argparse.Namespace) -> int:
    task_values = set_values(args, task_class.config_class)
    task = task_class(task_class.config_class.from_dict(task_values, "the command line"))
    result = run_task(task, task_class.trainer_config(**set_values(args, TrainerConfig)), args.output_dir)
    print(summary(result))
    return 0


def add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pretrain an encoder (MLM + NSP + SOP) with Keras fit",
                       description="Trains a PretrainingTask with the shared runner. Re-running the same command "
                                   "after an interruption resumes from the last backup.")
    p.add_argument("--output-dir", required=True)
    add_config_options(p, PretrainingTask.config_class)
    add_config_options(p, TrainerConfig)
    p.set_defaults(func=lambda args: train(PretrainingTask, args))


def add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a pretrained encoder on a downstream task",
                       description="Unset options take the task's defaults (the *TaskConfig dataclasses in "
                                   "rw_tf.tasks and each task's trainer_defaults).")
    p.add_argument("--task", choices=FINETUNE_TASKS, required=True)
    p.add_argument("--output-dir", required=True)
    seen: set = set()
    for name in FINETUNE_TASKS:
        add_config_options(p, TASKS[name].config_class, seen=seen)
    add_config_options(p, TrainerConfig)
    p.set_defaults(func=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    task_class = TASKS[args.task]
    given = {name for name in FINETUNE_TASKS for name in set_values(args, TASKS[name].config_class)}
    unused = sorted(given - set(set_values(args, task_class.config_class)))
    if unused:
        raise UserError(f"options not used by --task {args.task}: {', '.join(flag_name(u) for u in unused)}")
    return train(task_class, args)
