"""Pipeline configuration: one dataclass, loadable from a JSON file (``rw-tf pipeline run --config``).

Paths default to folders under ``root``: ``data/`` (prepared JSONL + vocab.txt), ``tfx/`` (the
pipeline root with every artifact), ``metadata.sqlite`` (MLMD) and ``serving/<model>/<version>``
(what the Pusher writes and TF Serving reads).

Example:
    >>> cfg = PipelineConfig(root="/tmp/rw")
    >>> cfg.serving_dir("pretrain")
    '/tmp/rw/serving/rw_tf_pretrain'
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

KINDS = ("pretrain", "finetune")


@dataclasses.dataclass
class PipelineConfig:
    name: str = "rw-tf"
    root: str = "runs/pipeline"
    data_root: Optional[str] = None
    # Where fine-tuning takes its encoder from; default: the newest pushed pretraining version.
    pretrained_model_uri: Optional[str] = None
    # Corpus: "embedded" (Python's documentation) or "nations" (the knowledge domain demo).
    corpus: str = "embedded"
    # Knowledge mode of the pretraining pipeline: alias TSV + a `rw-tf kg train` output folder
    # (for corpus "nations" both are prepared automatically), fusion and blocks to inject after.
    alias_file: Optional[str] = None
    knowledge_dir: Optional[str] = None
    knowledge_fusion: str = "gated"
    knowledge_layers: List[int] = dataclasses.field(default_factory=lambda: [0])
    # Model/data sizes (tiny defaults make the embedded run finish in minutes on 2 CPU cores).
    preset: str = "tiny"
    vocab_size: int = 4000
    max_documents: Optional[int] = None
    target_words: int = 25
    max_sequence_length: int = 64
    max_predictions_per_seq: int = 10
    finetune_max_per_class: int = 1500
    seed: int = 12345
    # Training.
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 30
    pretrain_train_steps: int = 300
    pretrain_eval_steps: int = 10
    finetune_train_steps: int = 150
    finetune_eval_steps: int = 10
    finetune_learning_rate: float = 1e-3
    strategy: str = "default"
    # Evaluation gates (TFMA): absolute lower bounds and the largest allowed drop vs. the baseline.
    mlm_accuracy_lower_bound: float = 0.05
    accuracy_lower_bound: float = 0.6
    auc_lower_bound: float = 0.6
    max_metric_drop: float = 0.02
    # Orchestration. TFX fingerprints component inputs and module files, not the installed rw_tf
    # package: after changing rw_tf code itself, run once with enable_cache false.
    enable_cache: bool = True
    beam_direct_running_mode: str = "multi_processing"
    beam_direct_num_workers: int = 2
    extra_beam_args: List[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        if self.corpus not in ("embedded", "nations"):
            raise ValueError(f"unknown corpus {self.corpus!r}; choose 'embedded' or 'nations'")
        if self.corpus == "nations":
            self.alias_file = self.alias_file or os.path.join(self.data_dir, "aliases.tsv")
            self.knowledge_dir = self.knowledge_dir or os.path.join(self.data_dir, "transe")
        if bool(self.alias_file) != bool(self.knowledge_dir):
            raise ValueError("knowledge mode needs both alias_file and knowledge_dir")
        if self.beam_direct_running_mode not in ("in_memory", "multi_threading", "multi_processing"):
            raise ValueError(f"unknown beam_direct_running_mode {self.beam_direct_running_mode!r}")

    # Derived locations -------------------------------------------------------------------------
    @property
    def data_dir(self) -> str:
        return os.path.abspath(self.data_root or os.path.join(self.root, "data"))

    @property
    def vocab_file(self) -> str:
        return os.path.join(self.data_dir, "vocab.txt")

    def examples_dir(self, kind: str) -> str:
        return os.path.join(self.data_dir, kind)

    def pipeline_name(self, kind: str) -> str:
        return f"{self.name}-{kind}"

    def pipeline_root(self, kind: str) -> str:
        return os.path.join(self.root, "tfx", self.pipeline_name(kind))

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.root, "metadata.sqlite")

    def serving_dir(self, kind: str) -> str:
        return os.path.join(self.root, "serving", f"rw_tf_{kind}")

    def beam_pipeline_args(self) -> List[str]:
        args = [f"--direct_running_mode={self.beam_direct_running_mode}"]
        if self.beam_direct_running_mode == "multi_processing":
            args.append(f"--direct_num_workers={self.beam_direct_num_workers}")
        return args + list(self.extra_beam_args)

    # Serialization -----------------------------------------------------------------------------
    @classmethod
    def from_json_file(cls, path: str, **overrides: Any) -> "PipelineConfig":
        with open(path, encoding="utf-8") as f:
            values: Dict[str, Any] = json.load(f)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown pipeline config keys in {path}: {sorted(unknown)}")
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)
