"""Pipeline configuration: one dataclass, loadable from a JSON file (``rw-tf pipeline run --config``),
and the typed contracts it hands to each component.

Paths default to folders under ``root``: ``data/`` (prepared JSONL + vocab.txt), ``tfx/`` (the
pipeline root with every artifact), ``metadata.sqlite`` (MLMD), ``logs/`` (library logs of each
run) and ``serving/<model>/<version>`` (what the Pusher writes and TF Serving reads).
Each pipeline kind's Transform gets a ``PretrainingTransformConfig``, ``TextTransformConfig`` or
``PairTransformConfig`` and
its Trainer a ``TrainerContract`` (task name, task config, ``TrainerConfig``), serialized into
``custom_config`` and parsed back by the module files: the defaults live in those rw_tf
dataclasses only.

Example:
    >>> cfg = PipelineConfig(root="/tmp/rw")
    >>> cfg.serving_dir("pretrain")
    '/tmp/rw/serving/rw_tf_pretrain'
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional

from rw_tf.config import DictConfig, EncoderConfig, check_choice
from rw_tf.data.transform_fns import (
    ImageTextTransformConfig,
    InteractionTransformConfig,
    PairTransformConfig,
    PretrainingTransformConfig,
    QATransformConfig,
    TextTransformConfig,
)
from rw_tf.model_files import read_json_object
from rw_tf.path_checks import require_pattern_free_folder
from rw_tf.tasks import (
    TASKS,
    ClassificationTaskConfig,
    ImageTextTaskConfig,
    PretrainingTaskConfig,
    QATaskConfig,
    RecommendationTaskConfig,
    SentenceEmbeddingTaskConfig,
)
from rw_tf.tasks.tfx_trainer import TrainerContract
from rw_tf.training import TrainerConfig
from rw_tf_schemas import SCHEMA_DIR

STAGES = ("pretrain", "finetune")   # the main job's stages (`--kind all`)
# Pipelines: one stage each, both main stages in one (recipe), sentence embeddings (embedding:
# contrastive fine-tuning of a pretrained checkpoint on (query, item, negative) examples) and
# recommendation (a two-tower recommender on the standard library's import graph) and multimodal
# (image-text matching with cross-attention fusion on handwritten digits and their captions).
# domain: the recipe's stages 2 and 3 on the Nations demo from a pushed general model (f_K,
# domain pretraining with KD from it, f_K fine-tuned on the triple task, refined fine-tuning with KD).
# refine: the web-data refinement alone (RefineWebData), e.g. scheduled apart from training.
# qa: extractive question answering (a span head on all-MiniLM-L6-v2) on the docstring glossary set
# or the rows of qa_train_file and qa_eval_file.
KINDS = STAGES + ("recipe", "domain", "embedding", "recommendation", "multimodal", "qa", "refine")
CORPORA = ("web", "embedded", "nations", "multilingual")
# The domain kind's gated and pushed stages -> the examples each trains on.
DOMAIN_STAGES = {"knowledge_model": "domain", "domain": "domain", "refined": "triples"}
DEFAULT_IMAGE = "gcr.io/tfx-oss-public/tfx:1.16.0"


def is_remote(path: str) -> bool:
    return "://" in path


def local_path(path: str) -> str:
    return path if is_remote(path) else os.path.abspath(path)


@dataclasses.dataclass
class PipelineConfig(DictConfig):
    name: str = "rw-tf"
    root: str = "runs/pipeline"
    data_root: Optional[str] = None
    schema_dir: str = SCHEMA_DIR
    # Where fine-tuning takes its encoder from; default: the newest pushed pretraining version.
    pretrained_model_uri: Optional[str] = None
    # Corpus: "web" (web pages refined by RefinedWeb's MacroData Refinement in the pipeline's
    # RefineWebData step: web_inputs, WARC/HTML/JSON Lines patterns, local or gs://...; empty: the
    # embedded web sample of rw_tf.refine.web_sample; refine_config: RefineConfig fields),
    # "embedded" (Python's documentation), "nations" (the knowledge domain demo) or
    # "multilingual" (Django's translation catalogues, rw_tf.data.multilingual);
    # corpus_uris (text files or glob patterns, local or gs://...), when given, are the corpus.
    corpus: str = "web"
    corpus_uris: List[str] = dataclasses.field(default_factory=list)
    web_inputs: List[str] = dataclasses.field(default_factory=list)
    refine_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    eval_fraction: float = 0.05
    # Knowledge mode: alias TSV + a `rw-tf kg train` output folder (for corpus "nations" both are
    # prepared automatically), fusion and the blocks to inject after.
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
    # Your fine-tuning data instead of the documentation-source set: both or neither, JSON Lines
    # `text, label` with labels 0 and 1 (local or gs://...), as `rw-tf finetune --train/--eval`
    # reads them; bad rows are counted in data_report.json, an edited file is prepared again.
    finetune_train_file: Optional[str] = None
    finetune_eval_file: Optional[str] = None
    seed: int = 12345
    # Training.
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 30
    pretrain_train_steps: int = 500     # the refined web corpus (Wikipedia, news) needs more than 300
    pretrain_eval_steps: int = 10
    finetune_train_steps: int = 150
    finetune_eval_steps: int = 10
    finetune_learning_rate: float = 1e-3
    # Fine-tuning batches regrouped by real length, each cut to its length bucket (less padding).
    finetune_length_bucketing: bool = False
    # Sentence embeddings (kind "embedding"): encoder checkpoint (default all-MiniLM-L6-v2; its
    # vocab.txt tokenizes the examples), steps and learning rate, docstring pairs to use.
    embedding_init_from: Optional[str] = None
    embedding_train_steps: int = 60
    embedding_eval_steps: int = 10
    embedding_learning_rate: float = 3e-5
    embedding_max_pairs: Optional[int] = None
    # Your pairs instead: JSON Lines `query, item[, group]` (local or gs://...) as `rw-tf finetune
    # --task sentence_embedding --pairs-file` reads them, split by group (no group: the last 20 %).
    embedding_pairs_file: Optional[str] = None
    # Recommendation (kind "recommendation"): steps, learning rate, longest history. Your catalogue
    # and histories instead of the import graph: both or neither, JSON Lines `item, text` and `user,
    # items` (rw_tf.data.interactions; local or gs://...), as `rw-tf finetune --task recommendation
    # --items/--interactions` reads them; what cannot be used is counted in data_report.json.
    recommendation_items_file: Optional[str] = None
    recommendation_interactions_file: Optional[str] = None
    recommendation_train_steps: int = 60
    recommendation_eval_steps: int = 4
    recommendation_learning_rate: float = 2e-3
    recommendation_max_history: int = 32
    # Image-text (kind "multimodal"): text encoder of a checkpoint (default all-MiniLM-L6-v2, whose
    # vocab.txt tokenizes the captions) or, with multimodal_text_preset, a fresh encoder of that preset.
    multimodal_init_from: Optional[str] = None
    multimodal_text_preset: Optional[str] = "tiny"
    multimodal_image_size: int = 32
    multimodal_caption_length: int = 16
    multimodal_eval_fraction: float = 0.2
    # Your image-caption pairs instead of the digits: JSON Lines `image, caption[, label]` as `rw-tf
    # finetune --task image_text --pairs` reads them (rw_tf.data.image_text), split by image; what
    # cannot be used is counted in data_report.json.
    multimodal_pairs_file: Optional[str] = None
    # Extractive QA (kind "qa"): encoder checkpoint (default all-MiniLM-L6-v2; its vocab.txt
    # tokenizes the examples), steps, learning rate and the window geometry (rw_tf.data.qa_windows;
    # a context needing more than qa_max_windows windows is left out by PrepareData and counted).
    # qa_train_file and qa_eval_file (both or neither; local or gs://...): your questions instead of
    # the glossary set, JSON Lines rows `question, context, answer[, answer_start]` as
    # `rw-tf finetune --task qa --train/--eval` reads them; bad rows are counted in qa_report.json.
    qa_init_from: Optional[str] = None
    qa_train_file: Optional[str] = None
    qa_eval_file: Optional[str] = None
    qa_train_steps: int = 200
    qa_eval_steps: int = 8
    qa_learning_rate: float = 1e-4
    qa_max_sequence_length: int = 128
    qa_doc_stride: int = 48
    qa_max_question_length: int = 24
    qa_max_windows: int = 10
    qa_max_answer_length: int = 64
    # The domain kind (rw_tf.recipe's stages 2 and 3): domain text (segments of two Nations facts)
    # and the triple-classification task, both read with the general model's vocabulary.
    domain_train_steps: int = 300
    domain_eval_steps: int = 8
    domain_learning_rate: float = 1e-3
    domain_max_sequence_length: int = 64
    domain_target_words: int = 8
    triples_train_steps: int = 300
    triples_eval_steps: int = 8
    triples_learning_rate: float = 1e-3
    triples_max_sequence_length: int = 32
    kd_weight: float = 0.5               # alpha, domain pretraining
    refined_kd_weight: float = 0.5       # beta, refined fine-tuning
    kd_temperature: float = 2.0
    triples_accuracy_lower_bound: float = 0.55
    triples_auc_lower_bound: float = 0.55
    multimodal_train_steps: int = 400
    multimodal_eval_steps: int = 12
    multimodal_learning_rate: float = 1e-3
    strategy: str = "default"
    precision: str = "float32"          # Trainer dtype policy: float32, mixed_bfloat16 or mixed_float16
    backup_every_steps: int = 100
    # Evaluation gates (TFMA): absolute lower bounds and the largest allowed drop vs. the baseline.
    mlm_accuracy_lower_bound: float = 0.05
    accuracy_lower_bound: float = 0.6
    auc_lower_bound: float = 0.6
    pair_accuracy_lower_bound: float = 0.8
    hit_at_10_lower_bound: float = 0.2
    match_accuracy_lower_bound: float = 0.6
    span_exact_match_lower_bound: float = 0.3
    max_metric_drop: float = 0.02
    # Orchestration. TFX fingerprints component inputs and configs, not the installed rw_tf code:
    # after changing rw_tf itself, run once with enable_cache false.
    enable_cache: bool = True
    beam_direct_running_mode: str = "multi_processing"
    beam_direct_num_workers: int = 2
    extra_beam_args: List[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        # Local paths become absolute; remote ones (gs://, s3://, any URI with a scheme) stay verbatim.
        self.root = local_path(self.root)
        self.data_root = local_path(self.data_root) if self.data_root else None
        require_pattern_free_folder(self.root, "the pipeline root")
        if self.data_root:
            require_pattern_free_folder(self.data_root, "data_root")
        check_choice("corpus", self.corpus, CORPORA)
        if self.corpus == "nations":
            self.alias_file = self.alias_file or os.path.join(self.data_dir, "aliases.tsv")
            self.knowledge_dir = self.knowledge_dir or os.path.join(self.data_dir, "transe")
        if bool(self.alias_file) != bool(self.knowledge_dir):
            raise ValueError("knowledge mode needs both alias_file and knowledge_dir")
        check_choice("beam_direct_running_mode", self.beam_direct_running_mode,
                     ("in_memory", "multi_threading", "multi_processing"))
        EncoderConfig.check_preset_blocks(self.preset, self.knowledge_layers)
        if self.finetune_train_file:
            self.require_defaults(["finetune_max_per_class"], "with the built-in data (no finetune_train_file)")
        if self.embedding_pairs_file:
            self.require_defaults(["embedding_max_pairs"], "with the built-in pairs (no embedding_pairs_file)")
        for kind, first, second in (("finetune", "train", "eval"), ("qa", "train", "eval"),
                                    ("recommendation", "items", "interactions")):
            first, second = f"{kind}_{first}_file", f"{kind}_{second}_file"
            if bool(getattr(self, first)) != bool(getattr(self, second)):
                raise ValueError(f"the {kind} kind's own data needs both {first} and {second}")
        for field in self.user_file_fields:
            path = getattr(self, field)
            if path and not is_remote(path):   # absolute: components run in other folders
                setattr(self, field, local_path(path))
                if not os.path.isfile(getattr(self, field)):
                    raise ValueError(f"{field} {getattr(self, field)} is not a file")
        try:   # the qa kind's geometry, checked before any component runs
            QATransformConfig(**self.qa_windows())
        except ValueError as err:
            raise ValueError(f"the qa kind's window settings (qa_{', qa_'.join(self.qa_windows())}): {err}") from None

    # Numbers that may be 0 (DictConfig.check_numbers checks every number: fractions are open
    # intervals, gate bounds closed, every other number > 0).
    # The fields naming one user file each (checked, made absolute, fingerprinted for TFX's cache).
    user_file_fields = ("finetune_train_file", "finetune_eval_file", "embedding_pairs_file", "qa_train_file",
                        "qa_eval_file", "recommendation_items_file", "recommendation_interactions_file",
                        "multimodal_pairs_file")
    may_be_zero = ("warmup_steps", "backup_every_steps", "kd_weight", "refined_kd_weight", "knowledge_layers")

    # Derived locations -------------------------------------------------------------------------
    @property
    def data_dir(self) -> str:
        return self.data_root or os.path.join(self.root, "data")

    @property
    def user_inputs(self) -> List[str]:
        """The files and patterns the data are read from that the user names (not the built-in sets)."""
        files = [getattr(self, field) for field in self.user_file_fields]
        return list(self.corpus_uris) + list(self.web_inputs) + [path for path in files if path]

    @property
    def refines_web(self) -> bool:
        """The pretraining corpus is refined web pages (no corpus_uris given instead)."""
        return self.corpus == "web" and not self.corpus_uris

    @property
    def refined_web_dir(self) -> str:
        """Where ``rw-tf pipeline prepare`` refines the web corpus when no RefineWebData step ran."""
        return os.path.join(self.data_dir, "refined_web")

    @property
    def vocab_file(self) -> str:
        return os.path.join(self.data_dir, "vocab.txt")

    def examples_dir(self, kind: str) -> str:
        return os.path.join(self.data_dir, kind)

    def schema_file(self, kind: str) -> str:
        # The domain kind's examples have the pretraining and fine-tuning columns.
        kind = {"domain": "pretrain", "triples": "finetune"}.get(kind, kind)
        return os.path.join(self.schema_dir, kind, "schema.pbtxt")

    @property
    def domain_knowledge_dir(self) -> str:
        """The Nations alias table and TransE model of the domain kind (PrepareData writes them)."""
        return os.path.join(self.data_dir, "nations_kg")

    def domain_knowledge(self) -> Dict[str, str]:
        return {"alias_file": os.path.join(self.domain_knowledge_dir, "aliases.tsv"),
                "knowledge_dir": os.path.join(self.domain_knowledge_dir, "transe")}

    def domain_transform_config(self, data_kind: str, vocab_file: str):
        """Transform of the domain kind's ``domain`` (pretraining) or ``triples`` (classification)
        examples, in knowledge mode, with the general model's vocabulary."""
        if data_kind == "domain":
            return PretrainingTransformConfig(
                vocab_file=vocab_file, max_sequence_length=self.domain_max_sequence_length,
                max_predictions_per_seq=self.max_predictions_per_seq, seed=self.seed, **self.domain_knowledge())
        return TextTransformConfig(vocab_file=vocab_file, max_sequence_length=self.triples_max_sequence_length,
                                   **self.domain_knowledge())

    def domain_trainer_contract(self, step: str) -> TrainerContract:
        """The domain kind's four Trainers: ``knowledge_model`` (f_K), ``domain`` (+ KD from f_K),
        ``knowledge_classifier`` (f_K on the task) and ``refined`` (+ KD from it). The teachers
        reach ``kd_teacher`` through the DistillationTrainer's teacher_model input."""
        if step in ("knowledge_model", "domain"):
            distil = {"kd_weight": self.kd_weight, "kd_temperature": self.kd_temperature} if step == "domain" else {}
            return self._contract("pretraining", PretrainingTaskConfig(
                max_sequence_length=self.domain_max_sequence_length,
                max_predictions_per_seq=self.max_predictions_per_seq, knowledge_fusion=self.knowledge_fusion,
                knowledge_layers=tuple(self.knowledge_layers), **distil, **self.domain_knowledge()),
                self.domain_learning_rate, warmup_steps=self.warmup_steps)
        distil = ({"kd_weight": self.refined_kd_weight, "kd_temperature": self.kd_temperature}
                  if step == "refined" else {})
        return self._contract("classification", ClassificationTaskConfig(
            num_classes=2, max_sequence_length=self.triples_max_sequence_length, **distil,
            **self.domain_knowledge()), self.triples_learning_rate, warmup_steps=self.warmup_steps)

    def pipeline_name(self, kind: str) -> str:
        return f"{self.name}-{kind}"

    def pipeline_root(self, kind: str) -> str:
        return os.path.join(self.root, "tfx", self.pipeline_name(kind))

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.root, "metadata.sqlite")

    @property
    def log_dir(self) -> str:
        return os.path.join(self.root, "logs")

    def serving_dir(self, kind: str) -> str:
        return os.path.join(self.root, "serving", f"rw_tf_{kind}")

    def beam_pipeline_args(self) -> List[str]:
        args = [f"--direct_running_mode={self.beam_direct_running_mode}"]
        if self.beam_direct_running_mode == "multi_processing":
            args.append(f"--direct_num_workers={self.beam_direct_num_workers}")
        return args + list(self.extra_beam_args)

    def train_steps(self, stage: str) -> int:
        return getattr(self, f"{stage}_train_steps")

    def eval_steps(self, stage: str) -> int:
        return getattr(self, f"{stage}_eval_steps")



    # Component contracts -----------------------------------------------------------------------
    def knowledge(self) -> Dict[str, Optional[str]]:
        return {"alias_file": self.alias_file, "knowledge_dir": self.knowledge_dir}

    def qa_windows(self) -> Dict[str, int]:
        """The QA window geometry, the same in the Transform, the Trainer and PrepareData's checks."""
        return {"max_sequence_length": self.qa_max_sequence_length, "doc_stride": self.qa_doc_stride,
                "max_question_length": self.qa_max_question_length, "max_windows": self.qa_max_windows}

    def transform_config(self, kind: str):
        if kind == "qa":
            vocab = os.path.join(self.qa_init_from, "vocab.txt") if self.qa_init_from else None
            return QATransformConfig(vocab_file=vocab, **self.qa_windows())
        if kind == "multimodal":
            vocab = os.path.join(self.multimodal_init_from, "vocab.txt") if self.multimodal_init_from else None
            return ImageTextTransformConfig(vocab_file=vocab, max_sequence_length=self.multimodal_caption_length,
                                            image_size=self.multimodal_image_size)
        if kind == "recommendation":
            return InteractionTransformConfig(items_file=self.items_file, max_history=self.recommendation_max_history)
        if kind == "embedding":
            # None: all-MiniLM-L6-v2, resolved where the component runs (its path differs in an image).
            vocab = os.path.join(self.embedding_init_from, "vocab.txt") if self.embedding_init_from else None
            return PairTransformConfig(vocab_file=vocab, max_sequence_length=self.max_sequence_length)
        if kind == "pretrain":
            return PretrainingTransformConfig(vocab_file=self.vocab_file, max_sequence_length=self.max_sequence_length,
                                              max_predictions_per_seq=self.max_predictions_per_seq, seed=self.seed,
                                              **self.knowledge())
        return TextTransformConfig(vocab_file=self.vocab_file, max_sequence_length=self.max_sequence_length,
                                   **self.knowledge())

    @property
    def items_file(self) -> str:
        """The recommendation catalogue's ids, one per line (its texts: ``items.jsonl`` beside it)."""
        return os.path.join(self.examples_dir("recommendation"), "items.txt")

    def _contract(self, task: str, task_config, learning_rate: float, **trainer: Any) -> TrainerContract:
        """A Trainer's contract: the task's trainer defaults with the pipeline's batch, seed, strategy
        and precision, then ``trainer`` (TFX sets the steps)."""
        return TrainerContract(task, task_config, TASKS[task].trainer_config(
            epochs=1, batch_size=self.batch_size, seed=self.seed, strategy=self.strategy, precision=self.precision,
            learning_rate=learning_rate, backup_every_steps=self.backup_every_steps, keep_epoch_checkpoints=False,
            **trainer))

    def trainer_contract(self, kind: str) -> TrainerContract:
        if kind == "qa":
            return self._contract("qa", QATaskConfig(init_from=self.qa_init_from,
                                                     max_answer_length=self.qa_max_answer_length, **self.qa_windows()),
                                  self.qa_learning_rate)
        if kind == "multimodal":
            return self._contract("image_text", ImageTextTaskConfig(
                init_from=self.multimodal_init_from, text_preset=self.multimodal_text_preset, objective="matching",
                fusion="cross_attention", image_size=self.multimodal_image_size,
                max_sequence_length=self.multimodal_caption_length), self.multimodal_learning_rate)
        if kind == "recommendation":
            return self._contract("recommendation", RecommendationTaskConfig(
                items_file=self.items_file[:-len(".txt")] + ".jsonl", max_history=self.recommendation_max_history,
                top_k=10), self.recommendation_learning_rate)
        if kind == "embedding":
            return self._contract("sentence_embedding", SentenceEmbeddingTaskConfig(
                mode="supervised", init_from=self.embedding_init_from, max_sequence_length=self.max_sequence_length),
                self.embedding_learning_rate)
        pretrain = kind == "pretrain"
        trainer = TrainerConfig(epochs=1, batch_size=self.batch_size, seed=self.seed, strategy=self.strategy,
                                precision=self.precision,
                                learning_rate=self.learning_rate if pretrain else self.finetune_learning_rate,
                                warmup_steps=self.warmup_steps, backup_every_steps=self.backup_every_steps,
                                keep_epoch_checkpoints=False)
        if pretrain:
            task = PretrainingTaskConfig(preset=self.preset, max_sequence_length=self.max_sequence_length,
                                         max_predictions_per_seq=self.max_predictions_per_seq,
                                         knowledge_fusion=self.knowledge_fusion,
                                         knowledge_layers=tuple(self.knowledge_layers), **self.knowledge())
            return TrainerContract("pretraining", task, trainer)
        task = ClassificationTaskConfig(preset=self.preset, num_classes=2, max_sequence_length=self.max_sequence_length,
                                        length_bucketing=self.finetune_length_bucketing, **self.knowledge())
        return TrainerContract("classification", task, trainer)

    @classmethod
    def from_json_file(cls, path: str, **overrides: Any) -> "PipelineConfig":
        return cls.from_dict({**read_json_object(path, "pipeline settings"), **overrides}, path)
