"""The RefinedWeb training recipe end to end, on the Nations domain demo, with its ablation table.

    rw-tf recipe --output-dir runs/recipe [--seeds 0 1 2] [--general-steps 600 --domain-steps 800 ...]
        [--strategy mirrored|multi_worker_mirrored|tpu] [--precision mixed_bfloat16]

The three stages of the design (section 3), each an ordinary task trained by the shared runner:
1. general pretraining on the embedded corpus, L = L_MLM + l1 L_NSP + l2 L_SOP;
2. domain pretraining on the domain text D (``PretrainingTaskConfig(corpus="nations",
   init_from=<stage 1>)``), L = L_MLM(D) + alpha L_KD(D, K), where the knowledge model f_K is
   trained first: stage 1's model made knowledge-enhanced (TransE entity embeddings of the
   Nations graph, fused after the first block) and pretrained on D;
3. refined fine-tuning on the domain task (Nations triple classification: is "<head> <relation>
   <tail>." a fact? held-out facts only in evaluation), L = L_task + beta L_KD, where the teacher is
   f_K fine-tuned on the task.
Every seed trains the whole chain (stage 1 included) and the four arms of the ablation:
(a) general pretraining only, (b) + domain MLM, (c) + domain MLM + KD from f_K,
(d) (c) + refined fine-tuning with KD. ``recipe.json`` holds every stage's metrics and the table
(mean, sample standard deviation and the per-seed values of held-out accuracy).
Re-running the command skips stages whose ``metrics.json`` exists (a stopped run continues, and
more ``--seeds`` extend a finished one); ``recipe_settings.json`` keeps the settings the folder was
started with, and other settings are refused there (they would reuse stages trained differently).

Example:
    >>> result = run_recipe(RecipeConfig(seeds=(0,), general_steps=20, domain_steps=10,   # doctest: +SKIP
    ...                                  finetune_steps=10), "/tmp/recipe")
    >>> result["table"]["d"]["mean"]                                                     # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import tensorflow as tf

from rw_tf.atomic_write import atomic_write
from rw_tf.config import DictConfig, changed_settings
from rw_tf.data.jsonl import write_jsonl
from rw_tf.errors import CorruptFileError, UserError
from rw_tf.folder_lock import output_folder_lock
from rw_tf.knowledge.demo import nations_demo, triple_classification_rows
from rw_tf.knowledge.training import TransEConfig, train_transe
from rw_tf.model_files import read_json_object
from rw_tf.path_checks import require_model_folder
from rw_tf.tasks.classification import ClassificationTask, ClassificationTaskConfig
from rw_tf.tasks.pretraining import PretrainingTask, PretrainingTaskConfig
from rw_tf.training.runner import TrainerConfig, run_task
from rw_tf.training.strategy import create_strategy, is_chief, wait_for_all_workers

ARMS = {
    "a": "general pretraining only",
    "b": "+ domain MLM",
    "c": "+ domain MLM + KD from f_K",
    "d": "(c) + refined fine-tuning with KD",
}


@dataclasses.dataclass
class RecipeConfig(DictConfig):
    seeds: Sequence[int] = (0, 1, 2)
    preset: str = "tiny"
    max_documents: Optional[int] = None    # general corpus: the first N embedded documents (None: all)
    max_sequence_length: int = 64
    target_words: int = 24
    domain_target_words: int = 8           # Nations sentences have ~4 words: two per segment
    general_steps: int = 600
    general_learning_rate: float = 1e-3
    domain_steps: int = 800                # f_K, (b) and (c) each
    domain_learning_rate: float = 1e-3
    finetune_steps: int = 600
    finetune_learning_rate: float = 1e-3
    finetune_max_sequence_length: int = 32
    batch_size: int = 32
    kd_weight: float = 0.5                 # alpha (domain pretraining)
    kd_temperature: float = 2.0
    finetune_kd_weight: float = 0.5        # beta (refined fine-tuning)
    max_train_triples: Optional[int] = None
    transe_epochs: int = 100
    transe_dim: int = 32
    # Every stage's distribution strategy and dtype policy (TrainerConfig's). With
    # multi_worker_mirrored every worker runs the same command with the same --output-dir on
    # storage they share: the chief writes, the others read its stages.
    strategy: str = "default"
    tpu: Optional[str] = None
    precision: str = "float32"

    def validate(self) -> None:
        if not self.seeds:
            raise ValueError("give at least one seed")
        self.trainer(1, 1.0, 0)   # checks the strategy and precision names

    def trainer(self, steps: int, learning_rate: float, seed: int) -> TrainerConfig:
        return TrainerConfig(epochs=1, steps_per_epoch=steps, batch_size=self.batch_size, learning_rate=learning_rate,
                             warmup_steps=max(1, steps // 10), seed=seed, keep_epoch_checkpoints=False,
                             strategy=self.strategy, tpu=self.tpu, precision=self.precision)


SETTINGS_FILE = "recipe_settings.json"
# Settings that change no stage's result: more seeds extend a run, a strategy spreads the same steps.
_RESUMABLE_SETTINGS = ("seeds", "strategy", "tpu")


def check_settings(config: RecipeConfig, output_dir: str, write: bool) -> None:
    """Refuses a folder started with other settings (its stages would be reused as if trained with
    these); otherwise records them (``write``: the chief)."""
    path = os.path.join(output_dir, SETTINGS_FILE)
    current = json.loads(json.dumps(config.to_dict(exclude=_RESUMABLE_SETTINGS)))
    if tf.io.gfile.exists(path):
        earlier = read_json_object(path, "recipe settings")
        changed = changed_settings(earlier, current)
        if changed:
            raise UserError(f"{output_dir} holds a recipe started with other settings: {', '.join(changed)}",
                            hint="re-run with those settings to continue it, or give a new --output-dir")
    elif write:
        with atomic_write(path) as f:
            json.dump(current, f, indent=2)


def _stage(task, trainer: TrainerConfig, output_dir: str, label: str, log: Callable[[str], None]) -> Dict[str, Any]:
    """Runs one stage, or reads its result when an earlier run finished it."""
    metrics_path = os.path.join(output_dir, "metrics.json")
    if tf.io.gfile.exists(metrics_path):
        result = read_json_object(metrics_path, "stage results")
        kinds = {"before": dict, "after": dict, "train_seconds": (int, float), "export_dir": str}
        wrong = [key for key, kind in kinds.items() if not isinstance(result.get(key), kind)]
        if wrong:   # hand-edited or written by something else: the table would fail later, unnamed
            raise CorruptFileError(f"{metrics_path} is not a finished stage's results (lacks {wrong})",
                                   hint=f"remove {output_dir} to run the stage again")
        log(f"{label}: done before ({output_dir})")
        return result
    started = time.monotonic()
    result = run_task(task, trainer, output_dir, verbose=0)
    after = result["after"]
    figure = (f"MLM accuracy {after['mlm_accuracy']:.3f}" if "mlm_accuracy" in after
              else f"held-out accuracy {after['accuracy']:.3f}")
    log(f"{label}: {figure} ({time.monotonic() - started:.0f} s)")
    return result


def _spread(values: List[float]) -> Dict[str, Any]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def run_recipe(config: RecipeConfig, output_dir: str, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Trains every stage for every seed (see the module docstring); returns and writes ``recipe.json``."""
    require_model_folder(output_dir, "the output folder")   # every stage exports under it
    started = time.monotonic()
    # Made before TensorFlow runs anything (a multi-worker strategy must be); every stage reuses it.
    strategy = create_strategy(config.strategy, tpu_address=config.tpu)
    chief = is_chief(strategy)
    # The chief holds the folder for the whole recipe: a second recipe into it is refused.
    with output_folder_lock(output_dir) if chief else contextlib.nullcontext():
        return _run_recipe(config, output_dir, strategy, chief, log, started)


def _run_recipe(config: RecipeConfig, output_dir: str, strategy, chief: bool, log: Callable[[str], None],
                started: float) -> Dict[str, Any]:
    check_settings(config, output_dir, write=chief)
    data_dir = os.path.join(output_dir, "data")
    knowledge_dir, alias_file = os.path.join(data_dir, "transe"), os.path.join(data_dir, "aliases.tsv")
    train_file, eval_file = (os.path.join(data_dir, "triples", f"{split}.jsonl") for split in ("train", "eval"))
    demo = nations_demo()
    if chief:
        _write_data(config, demo, train_file, eval_file, alias_file, knowledge_dir, log)
    wait_for_all_workers(strategy)   # the other workers read the chief's files
    knowledge = {"knowledge_dir": knowledge_dir, "alias_file": alias_file}
    triples = {"train_file": train_file, "eval_file": eval_file,
               "max_sequence_length": config.finetune_max_sequence_length}
    domain = {"corpus": "nations", "max_sequence_length": config.max_sequence_length,
              "target_words": config.domain_target_words}
    runs: Dict[str, Dict[str, Any]] = {}
    for seed in config.seeds:
        run_dir = os.path.join(output_dir, f"seed-{seed}")
        path = {name: os.path.join(run_dir, name) for name in (
            "general", "knowledge_model", "knowledge_classifier", "domain", "domain_kd", "a", "b", "c", "d")}
        pretrain = config.trainer(config.general_steps, config.general_learning_rate, seed)
        adapt = config.trainer(config.domain_steps, config.domain_learning_rate, seed)
        tune = config.trainer(config.finetune_steps, config.finetune_learning_rate, seed)
        stage = {}
        stage["general"] = _stage(PretrainingTask(PretrainingTaskConfig(
            preset=config.preset, max_documents=config.max_documents, max_sequence_length=config.max_sequence_length,
            target_words=config.target_words)), pretrain, path["general"], f"[seed {seed}] 1 general pretraining", log)
        stage["knowledge_model"] = _stage(PretrainingTask(PretrainingTaskConfig(
            init_from=path["general"], **domain, **knowledge)), adapt, path["knowledge_model"],
            f"[seed {seed}] f_K: knowledge-enhanced domain pretraining", log)
        stage["domain"] = _stage(PretrainingTask(PretrainingTaskConfig(init_from=path["general"], **domain)),
                                 adapt, path["domain"], f"[seed {seed}] 2 domain MLM", log)
        stage["domain_kd"] = _stage(PretrainingTask(PretrainingTaskConfig(
            init_from=path["general"], kd_teacher=path["knowledge_model"], kd_weight=config.kd_weight,
            kd_temperature=config.kd_temperature, **domain, **knowledge)), adapt, path["domain_kd"],
            f"[seed {seed}] 2 domain MLM + KD from f_K", log)
        stage["knowledge_classifier"] = _stage(ClassificationTask(ClassificationTaskConfig(
            init_from=path["knowledge_model"], **triples, **knowledge)), tune, path["knowledge_classifier"],
            f"[seed {seed}] f_K fine-tuned on the task (teacher)", log)
        starts = {"a": path["general"], "b": path["domain"], "c": path["domain_kd"], "d": path["domain_kd"]}
        for arm, start in starts.items():
            extra = (dict(kd_teacher=path["knowledge_classifier"], kd_weight=config.finetune_kd_weight,
                          kd_temperature=config.kd_temperature, **knowledge) if arm == "d" else {})
            stage[arm] = _stage(ClassificationTask(ClassificationTaskConfig(init_from=start, **triples, **extra)),
                                tune, path[arm], f"[seed {seed}] 3 fine-tuning ({arm}) {ARMS[arm]}", log)
        runs[str(seed)] = {name: {"before": result["before"], "after": result["after"],
                                  "train_seconds": result["train_seconds"], "export_dir": result["export_dir"]}
                           for name, result in stage.items()}
    table = {arm: {"arm": description, **_spread([runs[str(s)][arm]["after"]["accuracy"] for s in config.seeds])}
             for arm, description in ARMS.items()}
    table["f_K"] = {"arm": "the teacher: f_K fine-tuned on the task",
                    **_spread([runs[str(s)]["knowledge_classifier"]["after"]["accuracy"] for s in config.seeds])}
    domain_mlm = {name: _spread([runs[str(s)][name]["after"]["mlm_accuracy"] for s in config.seeds])
                  for name in ("knowledge_model", "domain", "domain_kd")}
    eval_rows = sum(1 for _ in tf.io.gfile.GFile(eval_file))
    result = {"config": config.to_dict(), "table": table, "domain_mlm_accuracy": domain_mlm,
              "eval_examples": eval_rows, "runs": runs, "wall_seconds": time.monotonic() - started}
    if chief:
        with atomic_write(os.path.join(output_dir, "recipe.json")) as f:
            json.dump(result, f, indent=2, default=float)
    log(format_table(result))
    return result


def _write_data(config: RecipeConfig, demo, train_file: str, eval_file: str, alias_file: str, knowledge_dir: str,
                log: Callable[[str], None]) -> None:
    """The triple task's splits, the alias table and the TransE model, unless an earlier run wrote them."""
    if not tf.io.gfile.exists(eval_file):
        train_rows, eval_rows = triple_classification_rows(demo, config.max_train_triples, seed=0)
        write_jsonl(train_rows, train_file)
        write_jsonl(eval_rows, eval_file)
    if not tf.io.gfile.exists(alias_file):
        with atomic_write(alias_file) as f:
            f.write("".join(f"{alias}\t{alias}\n" for alias in sorted(demo.alias_to_entity)))
    if not tf.io.gfile.exists(os.path.join(knowledge_dir, "transe.keras")):
        transe = train_transe(TransEConfig(dataset="nations", embedding_dim=config.transe_dim,
                                           epochs=config.transe_epochs, seed=0), knowledge_dir, verbose=0)
        log(f"knowledge graph: TransE on Nations, filtered MRR {transe['test_metrics']['mrr']:.3f}")


def format_table(result: Dict[str, Any]) -> str:
    """The ablation as a Markdown table."""
    seeds = result["config"]["seeds"]
    lines = [f"held-out accuracy on Nations triple classification ({result['eval_examples']} examples), "
             f"seeds {list(seeds)}", "", "| arm | mean | std | per seed |", "|---|---|---|---|"]
    for key, row in result["table"].items():
        values = ", ".join(f"{v:.3f}" for v in row["values"])
        lines.append(f"| ({key}) {row['arm']} | {row['mean']:.3f} | {row['std']:.3f} | {values} |")
    return "\n".join(lines)
