"""Pretraining task: L = L_MLM + l1 L_NSP + l2 L_SOP (+ l3 L_NCE) on segment pairs, optionally knowledge-enhanced.

Data: the embedded corpus or the user's text files (``corpus_files``), split by *document* into
train and eval before any pair is built (no eval pair shares a document with training); a
WordPiece vocabulary is learned from the training documents unless ``vocab_file`` is given.
Inside a TFX Trainer the data are the pipeline's transformed examples instead (``examples``).
Knowledge mode (``knowledge_dir``: a ``rw-tf kg train`` output, ``alias_file``: alias<TAB>entity)
trains a ``KnowledgeEnhancedEncoder`` with frozen TransE entity embeddings fused after the blocks
in ``knowledge_layers``; the examples carry ``entity_ids`` from an ``EntityLinker``.
Domain pretraining (stage 2 of the recipe, rw_tf.recipe): ``init_from`` continues from an rw-tf
pretraining output (its weights, heads and vocabulary), ``corpus="nations"`` reads the domain demo's
text (evaluation text from facts held out of training), and ``kd_teacher`` adds alpha L_KD: the
knowledge model f_K (a pretraining output, typically knowledge-enhanced) scores the same masked
positions and the student matches its distribution. With a teacher, ``knowledge_dir`` and
``alias_file`` give the *teacher's* inputs their entity ids; the student stays a plain language
model (knowledge reaches it only through the teacher). Teacher and student must share a vocabulary.
Evaluation: masked-LM loss and accuracy (and NSP/SOP) on fixed eval batches. Export: ``encode_text``,
``fill_mask`` and, in TFX, example-based signatures (``rw_tf.export.pretraining``).

Example:
    >>> task = PretrainingTask(PretrainingTaskConfig(preset="tiny", max_documents=80))      # doctest: +SKIP
    >>> run_task(task, task.trainer_config(epochs=1, steps_per_epoch=20), "/tmp/pretrain")   # doctest: +SKIP
"""
from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence

import keras
import tensorflow as tf

from rw_tf.checkpoints.pretrained import pretrained_task_model, pretrained_tokenizer
from rw_tf.config import DictConfig, EncoderConfig, PretrainingDataConfig, check_choice
from rw_tf.data.corpus import Document, SplitCounts, check_enough_documents, embedded_corpus, read_text_files
from rw_tf.data.multilingual import DEFAULT_LANGUAGES, multilingual_documents
from rw_tf.data.pretraining_dataset import pretraining_dataset, to_keras_triplet
from rw_tf.data.segment_pairs import segment_pair_candidates, yields_pairs
from rw_tf.data.splits import split_documents
from rw_tf.export.base import save_export
from rw_tf.export.pretraining import PretrainingExport
from rw_tf.knowledge.demo import nations_demo
from rw_tf.knowledge.entity_linking import alias_report, linker_for_knowledge_dir
from rw_tf.knowledge.graph import read_entity_vocabulary
from rw_tf.knowledge.training import load_model_dir
from rw_tf.models.pretraining import PretrainingModel, add_contrastive_targets, add_distillation_targets, warm_start
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.networks.knowledge_encoder import KnowledgeEnhancedEncoder
from rw_tf.tasks.base import Task, check_sequence_length
from rw_tf.tokenization import SPECIAL_TOKENS, WordPieceTokenizer, learn_vocabulary, read_vocabulary, write_vocabulary
from rw_tf.training.runner import TrainerConfig


@dataclasses.dataclass
class PretrainingTaskConfig(DictConfig):
    preset: str = "tiny"
    # "embedded" (CPython's English documentation), "multilingual" (Django's translation catalogues,
    # rw_tf.data.multilingual: masked-LM accuracy is then also reported per language) or "nations"
    # (the domain demo's text, rw_tf.knowledge.demo); corpus_files replace any of them.
    corpus: str = "embedded"
    languages: Sequence[str] = ()            # multilingual: language codes (default DEFAULT_LANGUAGES)
    corpus_files: Sequence[str] = ()
    max_documents: Optional[int] = None
    vocab_file: Optional[str] = None
    vocab_size: int = 8000
    lower_case: bool = True
    target_words: int = 40
    max_sequence_length: int = 128
    max_predictions_per_seq: int = 20
    whole_word_masking: bool = False
    eval_fraction: float = 0.05
    eval_batches: int = 8
    nsp_weight: float = 1.0
    sop_weight: float = 1.0
    pair_representation: str = "segment_means"  # or "cls_pooler" (BERT: NSP/SOP train the pooler)
    nce_weight: float = 0.0                      # l3: SimCSE InfoNCE on two dropout views of each input
    nce_temperature: float = 0.05
    dropout: Optional[float] = None              # replaces the preset's dropout rates (tiny has none)
    # Knowledge mode: a `rw-tf kg train` output and an alias table, fused after these blocks.
    knowledge_dir: Optional[str] = None
    alias_file: Optional[str] = None
    knowledge_fusion: str = "gated"
    knowledge_layers: Sequence[int] = (0,)
    # Continue from an rw-tf pretraining output / export (weights, heads, vocabulary; preset ignored).
    init_from: Optional[str] = None
    # Domain pretraining with distillation: f_K (an rw-tf pretraining output) and alpha, T.
    kd_teacher: Optional[str] = None
    kd_weight: float = 0.5
    kd_temperature: float = 2.0

    may_be_zero = ("nsp_weight", "sop_weight", "nce_weight",   # 0: that loss is off
                   "knowledge_layers")                         # block 0 is the first

    def validate(self) -> None:
        check_choice("corpus", self.corpus, CORPORA)
        if self.init_from and self.vocab_file:
            raise ValueError("init_from brings its own vocabulary; leave vocab_file unset")
        if self.kd_teacher and not (self.kd_weight > 0 and self.kd_temperature > 0):
            raise ValueError("distillation needs kd_weight > 0 and kd_temperature > 0")
        if not self.nce_weight:
            self.require_defaults(["nce_temperature"], "with nce_weight > 0")
        if not (self.nsp_weight or self.sop_weight):
            self.require_defaults(["pair_representation"], "with nsp_weight or sop_weight > 0")
        if self.languages and self.corpus != "multilingual":
            raise ValueError("languages applies to corpus 'multilingual' only")
        if self.corpus_files and self.corpus != "embedded":
            raise ValueError(f"corpus_files replace the built-in corpus, so corpus {self.corpus!r} would be "
                             "ignored: give one of them")
        if bool(self.knowledge_dir) != bool(self.alias_file):
            raise ValueError("knowledge mode needs both knowledge_dir and alias_file")
        if self.init_from:   # the encoder's depth is known once its checkpoint is read
            EncoderConfig.preset(self.preset)
            if not self.knowledge_layers:
                raise ValueError("knowledge_layers must name at least one block")
        else:
            EncoderConfig.check_preset_blocks(self.preset, self.knowledge_layers)


CORPORA = ("embedded", "multilingual", "nations")


def load_documents(config: PretrainingTaskConfig, counts: Optional[SplitCounts] = None) -> List[Document]:
    """The corpus as documents; texts and sentences dropped by the splitter are counted in ``counts``."""
    counts = counts if counts is not None else SplitCounts()
    docs = (read_text_files(config.corpus_files, counts=counts) if config.corpus_files
            else embedded_corpus(config.max_documents, counts=counts))
    docs = docs[:config.max_documents] if config.max_documents is not None else docs
    check_enough_documents(docs, counts)
    return docs


class PretrainingTask(Task):
    """See the module docstring; ``examples`` is a ``TransformedExamples`` inside a TFX Trainer."""

    name = "pretraining"
    config_class = PretrainingTaskConfig
    trainer_defaults = {"epochs": 3, "steps_per_epoch": 100, "learning_rate": 1e-3, "warmup_steps": 50}

    def prepare(self, output_dir: str, trainer: TrainerConfig) -> Dict[str, Any]:
        cfg = self.config
        self.seed, self.batch_size, self.validation_steps = trainer.seed, trainer.batch_size, trainer.validation_steps
        if self.examples is not None:
            self.tokenizer = WordPieceTokenizer(self.examples.vocab_file, lower_case=cfg.lower_case)
            self.max_sequence_length = self.examples.max_sequence_length
        else:
            # Outside a pipeline's Trainer, which gets init_from from its base model next to its
            # config's preset, and kd_teacher from its teacher input next to kd_weight.
            if not cfg.kd_teacher:
                cfg.require_defaults(["kd_weight", "kd_temperature"], "with kd_teacher")
            if cfg.init_from:
                cfg.require_defaults(["preset", "vocab_size", "lower_case"],
                                     "without init_from (it brings its architecture and vocabulary)")
            elif cfg.vocab_file:
                cfg.require_defaults(["vocab_size"], "when the vocabulary is learned (no vocab_file)")
            self.max_sequence_length = cfg.max_sequence_length
            self.split_drops, self.removed = SplitCounts(), collections.Counter()
            self.eval_pairs_by_language, self.language_documents = {}, {}
            if cfg.corpus == "multilingual" and not cfg.corpus_files:
                train_docs, eval_docs = self._split_by_language(cfg, trainer.seed)
            elif cfg.corpus == "nations" and not cfg.corpus_files:
                demo = nations_demo(seed=trainer.seed)  # eval text states the test facts only
                train_docs, eval_docs = demo.train_documents, demo.eval_documents
            else:
                train_docs, eval_docs, self.removed = split_documents(
                    load_documents(cfg, self.split_drops), cfg.eval_fraction, trainer.seed, usable=self._yields_pairs)
            vocab_path = os.path.join(output_dir, "vocab.txt")
            tf.io.gfile.makedirs(output_dir)
            if cfg.init_from:
                start = pretrained_tokenizer(cfg.init_from)
                tf.io.gfile.copy(start.vocab_file, vocab_path, overwrite=True)
            elif cfg.vocab_file:
                read_vocabulary(cfg.vocab_file, SPECIAL_TOKENS)  # errors name the user's file, not the copy
                tf.io.gfile.copy(cfg.vocab_file, vocab_path, overwrite=True)
            elif not tf.io.gfile.exists(vocab_path):  # a resumed run keeps the vocabulary it started with
                write_vocabulary(learn_vocabulary((s for d in train_docs for s in d), cfg.vocab_size,
                                                  lower_case=cfg.lower_case), vocab_path)
            # A start model keeps its tokenizer settings (a cased checkpoint stays cased).
            settings = {**start.get_config(), "vocab_file": vocab_path} if cfg.init_from else None
            self.tokenizer = (WordPieceTokenizer.from_config(settings) if settings
                              else WordPieceTokenizer(vocab_path, lower_case=cfg.lower_case))
            self.train_pairs = segment_pair_candidates(train_docs, cfg.target_words, trainer.seed)
            self.eval_pairs = segment_pair_candidates(eval_docs, cfg.target_words, trainer.seed + 1)
        self.linker = linker_for_knowledge_dir(self.tokenizer, cfg.alias_file, cfg.knowledge_dir)
        self.teacher = self._load_teacher() if cfg.kd_teacher else None
        if self.examples is not None:
            return {"vocab_size": self.tokenizer.vocab_size}
        return {"num_documents": len(train_docs) + len(eval_docs), "train_documents": len(train_docs),
                "eval_documents": len(eval_docs), "train_pairs": len(self.train_pairs["text_a"]),
                "eval_pairs": len(self.eval_pairs["text_a"]), "vocab_size": self.tokenizer.vocab_size,
                "dropped_while_splitting": dict(self.split_drops), "removed_before_split": dict(self.removed),
                **({"documents_by_language": self.language_documents} if self.language_documents else {}),
                **alias_report(self.linker)}

    def _load_teacher(self) -> PretrainingModel:
        """f_K, checked against the student: same vocabulary, entity ids when it reads them."""
        cfg = self.config
        teacher = pretrained_task_model(cfg.kd_teacher)
        if not isinstance(teacher, PretrainingModel):
            raise ValueError(f"kd_teacher {cfg.kd_teacher} holds a {type(teacher).__name__}, not a PretrainingModel")
        if pretrained_tokenizer(cfg.kd_teacher).vocabulary != self.tokenizer.vocabulary:
            raise ValueError(f"kd_teacher {cfg.kd_teacher} uses another vocabulary than the student: distillation "
                             "compares distributions over the same tokens (start both from the same model)")
        if isinstance(teacher.encoder, KnowledgeEnhancedEncoder):
            if self.linker is None:
                raise ValueError("the teacher is knowledge-enhanced: give knowledge_dir and alias_file so its "
                                 "inputs carry entity ids")
            known = len(read_entity_vocabulary(cfg.knowledge_dir))
            if teacher.encoder.num_entities != known:
                raise ValueError(f"the teacher knows {teacher.encoder.num_entities} entities but knowledge_dir "
                                 f"has {known}")
        if teacher.encoder.config.max_sequence_length < self.max_sequence_length:
            raise ValueError(f"the teacher reads at most {teacher.encoder.config.max_sequence_length} tokens, "
                             f"max_sequence_length is {self.max_sequence_length}")
        return teacher

    def _yields_pairs(self, doc: Document) -> bool:
        return yields_pairs(doc, self.config.target_words)

    def _split_by_language(self, cfg: PretrainingTaskConfig, seed: int):
        """Documents held out per language, so every language has its own evaluation pairs."""
        by_language: Dict[str, List[Document]] = {}
        for language, doc in multilingual_documents(cfg.languages or DEFAULT_LANGUAGES):
            by_language.setdefault(language, []).append(doc)
        train_docs, eval_docs, seen = [], [], set()   # a sentence repeated in two languages is kept once
        for language, docs in by_language.items():
            train, held_out, removed = split_documents(docs, cfg.eval_fraction, seed, seen, self._yields_pairs)
            self.removed.update(removed)
            train_docs += train
            eval_docs += held_out
            self.language_documents[language] = {"train": len(train), "eval": len(held_out)}
            self.eval_pairs_by_language[language] = segment_pair_candidates(held_out, cfg.target_words, seed + 1)
        return train_docs, eval_docs

    def data_config(self) -> PretrainingDataConfig:
        return PretrainingDataConfig(max_sequence_length=self.max_sequence_length,
                                     max_predictions_per_seq=self.config.max_predictions_per_seq,
                                     whole_word_masking=self.config.whole_word_masking, seed=self.seed)

    def build_encoder(self) -> TransformerEncoder:
        cfg = self.config
        if self.start is not None:
            sizes = EncoderConfig(**self.start.encoder.config.to_dict())
            check_sequence_length(self.max_sequence_length, self.start.encoder)
        else:
            sizes = EncoderConfig.preset_for_length(cfg.preset, self.tokenizer.vocab_size, self.max_sequence_length)
        if cfg.dropout is not None:
            sizes = dataclasses.replace(sizes, dropout=cfg.dropout, attention_dropout=cfg.dropout)
        if not cfg.knowledge_dir or cfg.kd_teacher:  # with a teacher, the knowledge files are its inputs'
            return TransformerEncoder.from_encoder_config(sizes)
        transe, entities, _ = load_model_dir(cfg.knowledge_dir)
        vectors = transe.entity_embedding.embeddings.numpy()
        encoder = KnowledgeEnhancedEncoder(num_entities=len(entities), entity_embedding_dim=vectors.shape[1],
                                           knowledge_layers=tuple(cfg.knowledge_layers), fusion=cfg.knowledge_fusion,
                                           **sizes.to_dict())
        encoder.set_entity_embeddings(vectors)
        return encoder

    def build_model(self) -> keras.Model:
        cfg = self.config
        self.start = pretrained_task_model(cfg.init_from) if cfg.init_from else None
        if self.start is not None and not isinstance(self.start, PretrainingModel):
            raise ValueError(f"init_from {cfg.init_from} holds a {type(self.start).__name__}; continue pretraining "
                             "from a pretraining output")
        model = PretrainingModel(self.build_encoder(), nsp_weight=cfg.nsp_weight, sop_weight=cfg.sop_weight,
                                 pair_representation=cfg.pair_representation,
                                 kd_weight=cfg.kd_weight if self.teacher is not None else 0.0,
                                 kd_temperature=cfg.kd_temperature,
                                 nce_weight=cfg.nce_weight, nce_temperature=cfg.nce_temperature,
                                 name="pretraining_model")
        x_spec = self.train_dataset(2).element_spec[0]
        model.build({k: tuple(v.shape) for k, v in x_spec.items()})
        if self.start is not None:
            warm_start(model, self.start)
        return model

    def _dataset(self, batch_size: int, train: bool) -> tf.data.Dataset:
        if self.examples is not None:
            ds = self.examples.dataset("train" if train else "eval", batch_size).map(to_keras_triplet)
        else:
            ds = pretraining_dataset(self.train_pairs if train else self.eval_pairs, self.tokenizer,
                                     self.data_config(), batch_size, shuffle=train, linker=self.linker)
        ds = add_distillation_targets(ds, self.teacher) if self.teacher is not None else ds
        return add_contrastive_targets(ds) if self.config.nce_weight > 0 else ds

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        return self._dataset(batch_size, train=True)

    def num_train_examples(self) -> int:
        return len(self.train_pairs["text_a"])

    def validation_dataset(self, batch_size: int) -> tf.data.Dataset:
        if self.examples is not None:
            return self._dataset(batch_size, train=False)
        # Fixed batches (the same examples every time), cached after the first pass.
        return self._dataset(batch_size, train=False).take(self.config.eval_batches).cache()

    def evaluate(self, model: keras.Model) -> Dict[str, Any]:
        metrics = model.evaluate(self.validation_dataset(self.batch_size), steps=self.validation_steps, verbose=0,
                                 return_dict=True)
        if getattr(self, "eval_pairs_by_language", None):
            # Every held-out pair of each language once, masked with the evaluation seed.
            metrics["mlm_accuracy_by_language"] = {
                language: model.evaluate(pretraining_dataset(pairs, self.tokenizer, self.data_config(), self.batch_size,
                                                             shuffle=False, repeat=False, drop_remainder=False,
                                                             linker=self.linker),
                                         verbose=0, return_dict=True)["mlm_accuracy"]
                for language, pairs in self.eval_pairs_by_language.items()}
        return metrics

    def export(self, model: keras.Model, export_dir: str) -> str:
        module = PretrainingExport(model, self.tokenizer, self.max_sequence_length, linker=self.linker,
                                   transform_output=self.transform_output)
        return save_export(module, export_dir)
