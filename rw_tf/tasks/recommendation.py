"""Recommendation task: a ``TwoTowerRecommender`` on real interactions, against three baselines.

Data: the standard library's import graph (``rw_tf.data.interactions``: a module is a user, the
modules it imports are its history, module docstrings are item texts) or your own catalogue and
histories (``items_file`` and ``interactions_file``, formats in ``rw_tf.data.interactions``; what
cannot be used is counted in the result's ``data.rejected_rows``), leave-one-out: each
user's last item is the test item, the one before the validation item, and training examples are
(prefix of the earlier items -> next item). Item texts are embedded once with ``init_from``
(default all-MiniLM-L6-v2, mean pooling) into the item tower's frozen text table; with a
knowledge-enhanced ``init_from`` (``knowledge_dir`` and ``alias_file``) the item texts are linked to
entities and embedded with their entity ids.

Evaluation (before and after training): recall@10, NDCG@10 and MRR of each user's test item
among all items the user does not have yet (ties count half), from the history without the test
item. ``finish`` scores the baselines on the same users: popularity (training interactions),
item-to-item co-occurrence (training histories) and text only (the mean of the history's text
embeddings, no user tower). Export: ``recommend`` (space-separated item ids per user -> top-k
unseen items and scores, over the item index inside the model) and ``item_embeddings``.
Inside a TFX Trainer the examples are the pipeline's transformed (history, item) rows
(``examples``) and the catalogue is ``items_file`` (JSON Lines ``item``, ``text``, ``train_count``
in index order); evaluation ranks the eval split's held-out items, and the export adds
``serving_default`` on raw examples -> ``hit_at_k`` and ``reciprocal_rank`` (what the TFMA gate
scores). The baselines are computed from the raw interactions, i.e. outside TFX.

Example:
    >>> task = RecommendationTask(RecommendationTaskConfig())                       # doctest: +SKIP
    >>> run_task(task, task.trainer_config(), "/tmp/recommend")                      # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from rw_tf.checkpoints import minilm_checkpoint_dir, pretrained_encoder, pretrained_tokenizer
from rw_tf.config import DictConfig, check_choice
from rw_tf.data.interactions import load_interactions
from rw_tf.data.jsonl import loads_text
from rw_tf.data.lines import bounded_lines, open_input
from rw_tf.export.base import save_export
from rw_tf.export.recommendation import RecommenderExport
from rw_tf.knowledge.entity_linking import alias_report, linker_for_knowledge_dir
from rw_tf.models.recommender import USER_POOLINGS, TwoTowerRecommender
from rw_tf.models.sentence_encoder import SentenceEncoder
from rw_tf.networks.encoder import ENCODER_INPUTS
from rw_tf.tasks.base import Task
from rw_tf.tasks.sentence_embedding import embed_texts
from rw_tf.training.runner import TrainerConfig


@dataclasses.dataclass
class RecommendationTaskConfig(DictConfig):
    init_from: Optional[str] = None          # the sentence encoder of item texts (default all-MiniLM-L6-v2)
    # Your data: a catalogue (JSON Lines item, text) and histories (user, items[, profile]); in a
    # TFX Trainer items_file is the catalogue the pipeline's PrepareData wrote (no interactions_file).
    items_file: Optional[str] = None
    interactions_file: Optional[str] = None
    # Knowledge mode (a knowledge-enhanced init_from): item texts are embedded with entity ids.
    knowledge_dir: Optional[str] = None
    alias_file: Optional[str] = None
    include_site_packages: bool = False      # users: the installed packages' modules too (~5,000 more)
    min_history: int = 3
    max_history: int = 32
    embedding_dim: int = 128
    use_item_ids: bool = True
    pooling: str = "attention"
    temperature: float = 0.1
    sampling_correction: bool = True         # logQ correction of in-batch negatives
    item_bias: bool = True                   # a learned per-item bias in the score
    hard_negatives: bool = False             # + per example the text-nearest item the user lacks
    use_profile_text: bool = False           # the user tower also reads the user's profile text
    item_text_length: int = 64
    top_k: int = 10

    def validate(self) -> None:
        if bool(self.knowledge_dir) != bool(self.alias_file):
            raise ValueError("knowledge mode needs both knowledge_dir and alias_file")
        if self.interactions_file and not self.items_file:
            raise ValueError("interactions_file needs items_file: the catalogue whose ids the histories name")
        if self.interactions_file and self.include_site_packages:
            raise ValueError("include_site_packages adds users to the import graph: not with interactions_file")
        check_choice("pooling", self.pooling, USER_POOLINGS)


def pad_history(history: Sequence[int], max_history: int) -> List[int]:
    """The latest ``max_history`` items, padded with -1 after them."""
    history = list(history)[-max_history:]
    return history + [-1] * (max_history - len(history))


def ranking_metrics(scores: np.ndarray, targets: np.ndarray, k: int = 10) -> Dict[str, float]:
    """recall@k, NDCG@k, MRR of ``targets`` in ``scores`` [users, items] (-inf: excluded); ties count half."""
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    ranks = 1 + (scores > target_scores).sum(1) + 0.5 * ((scores == target_scores).sum(1) - 1)
    return {f"recall@{k}": float(np.mean(ranks <= k)),
            f"ndcg@{k}": float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1), 0.0))),
            "mrr": float(np.mean(1.0 / ranks))}


def _excluding(scores: np.ndarray, histories: Sequence[Sequence[int]]) -> np.ndarray:
    scores = np.array(scores, dtype=np.float64)
    for row, history in enumerate(histories):
        scores[row, list(history)] = -np.inf
    return scores


def baseline_scores(train_histories: Sequence[Sequence[int]], histories: Sequence[Sequence[int]],
                    text_vectors: np.ndarray) -> Dict[str, np.ndarray]:
    """Scores [users, items] of the popularity, co-occurrence and text-only baselines."""
    num_items = len(text_vectors)
    popularity = np.bincount([i for h in train_histories for i in h], minlength=num_items).astype(np.float64)
    cooccurrence = np.zeros((num_items, num_items))
    for h in train_histories:
        items = sorted(set(h))
        cooccurrence[np.ix_(items, items)] += 1
    np.fill_diagonal(cooccurrence, 0)
    users = np.stack([text_vectors[list(h)].mean(0) for h in histories])
    users /= np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)
    return {"popularity": np.tile(popularity, (len(histories), 1)),
            "co-occurrence": np.stack([cooccurrence[list(h)].sum(0) for h in histories]),
            "text only": users @ text_vectors.T}


def text_hard_negatives(pairs, text_vectors: np.ndarray, neighbours: int = 50) -> np.ndarray:
    """Per (history, item) pair the item whose text is closest to the item's, among the items
    that are neither the item nor in the history (a hard negative)."""
    nearest = np.argsort(-(text_vectors @ text_vectors.T), axis=1)[:, :neighbours + 1]
    out = []
    for history, item in pairs:
        excluded = set(history) | {item}
        candidates = [j for j in nearest[item] if j not in excluded]
        out.append(candidates[0] if candidates else next(j for j in range(len(text_vectors)) if j not in excluded))
    return np.array(out, np.int32)


def read_items(path: str):
    """(item ids, item texts, training counts) of an items file (see the module docstring)."""
    rows = []
    with open_input(path, decompress=True) as f:
        for number, (line, too_long) in enumerate(bounded_lines(f, source=path), 1):
            if too_long:
                raise ValueError(f"{path} line {number} is longer than {len(line)} bytes: not an item")
            if not line.strip():
                continue
            try:
                rows.append(loads_text(line))
            except ValueError as err:   # also bytes that are not UTF-8 and lone surrogates
                raise ValueError(f"{path} line {number}: {err}") from None
    if not rows or any(not isinstance(r, dict) or not isinstance(r.get("item"), str)
                       or not isinstance(r.get("text"), str) for r in rows):
        raise ValueError(f"{path}: every line needs an 'item' id and a 'text'")
    return [r["item"] for r in rows], [r["text"] for r in rows], np.array([r.get("train_count", 0) for r in rows])


class RecommendationTask(Task):
    """See the module docstring; ``examples`` is a ``TransformedExamples`` inside a TFX Trainer."""

    name = "recommendation"
    config_class = RecommendationTaskConfig
    trainer_defaults = {"epochs": 3, "batch_size": 32, "learning_rate": 2e-3, "decay": "constant",
                        "weight_decay": 0.0, "clipnorm": 0.0}

    def _embed_items(self) -> None:
        init_from = self.config.init_from or minilm_checkpoint_dir()
        self.tokenizer = pretrained_tokenizer(init_from)
        self.linker = linker_for_knowledge_dir(self.tokenizer, self.config.alias_file, self.config.knowledge_dir)
        self.text_model = SentenceEncoder(pretrained_encoder(init_from, self.tokenizer))
        self.text_model.build({k: (None, self.config.item_text_length) for k in ENCODER_INPUTS})
        self.text_vectors = embed_texts(self.text_model, self.tokenizer, self.item_texts,
                                        self.config.item_text_length, linker=self.linker)

    def _profiles(self, users: Sequence[str]) -> Optional[np.ndarray]:
        """Profile vectors [len(users), text_dim] (zeros for users without a profile text)."""
        if not self.config.use_profile_text:
            return None
        texts = sorted({self.user_texts[u] for u in users if self.user_texts.get(u)})
        vectors = dict(zip(texts, embed_texts(self.text_model, self.tokenizer, texts, self.config.item_text_length)))
        zero = np.zeros(self.text_vectors.shape[1], np.float32)
        return np.stack([vectors.get(self.user_texts.get(u, ""), zero) for u in users]).astype(np.float32)

    def prepare(self, output_dir: str, trainer: TrainerConfig) -> Dict[str, Any]:
        cfg = self.config
        self.seed, self.validation_steps = trainer.seed, trainer.validation_steps
        if self.examples is not None:
            if cfg.hard_negatives or cfg.use_profile_text:
                raise ValueError("hard_negatives and use_profile_text need the raw interactions (rw-tf finetune), "
                                 "not pipeline examples")
            if not cfg.items_file:
                raise ValueError("a recommendation Trainer needs items_file (the pipeline's items.jsonl)")
            self.items, self.item_texts, self.item_counts = read_items(cfg.items_file)
            self._embed_items()
            return {"items": len(self.items)}
        if cfg.items_file and not cfg.interactions_file:
            raise ValueError("items_file needs interactions_file (the histories of your users) outside a TFX Trainer")
        data, file_rejects = load_interactions(cfg.items_file, cfg.interactions_file, cfg.min_history,
                                               cfg.include_site_packages)
        self.items, self.item_texts, self.user_texts = data.items, data.item_texts, data.user_texts
        loo = data.leave_one_out(trainer.seed)
        self.train_histories, self.train_examples, self.validation = loo.train_histories, loo.examples, loo.validation
        self.test_histories = [h for h, _ in loo.test]
        self.test_items = np.array([t for _, t in loo.test])
        self.item_counts = np.bincount([t for _, t in self.train_examples], minlength=len(self.items))
        if len(self.train_examples) < trainer.batch_size or not self.validation or not self.test_histories:
            raise ValueError(f"{len(self.train_examples)} training examples, {len(self.validation)} validation and "
                             f"{len(self.test_histories)} test users: training needs one batch of "
                             f"{trainer.batch_size}, a validation and a test user "
                             f"({len(data.histories)} users; rejected {file_rejects})")
        self._embed_items()
        self.example_profiles, self.validation_profiles, self.test_profiles = (
            self._profiles(users) for users in (loo.example_users, loo.validation_users, loo.test_users))
        return {"items": len(self.items), "users": len(self.train_histories), "test_users": len(self.test_items),
                "train_examples": len(self.train_examples),
                "train_interactions": sum(len(h) for h in self.train_histories),
                "removed": loo.removed, **({"rejected_rows": file_rejects} if cfg.interactions_file else {}),
                **alias_report(self.linker)}

    def build_model(self) -> keras.Model:
        cfg = self.config
        model = TwoTowerRecommender(len(self.items), self.text_vectors.shape[1], cfg.embedding_dim, cfg.max_history,
                                    cfg.use_item_ids, cfg.pooling, cfg.temperature, cfg.sampling_correction,
                                    cfg.item_bias, self.text_vectors.shape[1] if cfg.use_profile_text else 0,
                                    name="two_tower_recommender")
        shapes = {"history": (None, cfg.max_history), "item": (None,)}
        if cfg.use_profile_text:
            shapes["profile"] = (None, self.text_vectors.shape[1])
        model.build(shapes)
        model.set_item_text_embeddings(self.text_vectors)
        model.set_item_frequencies(self.item_counts)
        return model

    def _transformed(self, split: str, batch_size: int, train: bool) -> tf.data.Dataset:
        def to_keras(features):
            history, item = tf.cast(features["history_ids"], tf.int32), tf.cast(features["item_id"], tf.int32)
            ids = tf.concat([-tf.ones_like(item)[:, None], item[:, None], item[:, None], history], axis=1)
            return {"history": history, "item": item}, ids

        # Rows whose item is not in the catalogue (-1) cannot be scored: they are skipped.
        rows = self.examples.dataset(split, batch_size).unbatch().filter(lambda f: f["item_id"] >= 0)
        return rows.batch(batch_size, drop_remainder=train).map(to_keras)

    def _dataset(self, pairs, batch_size: int, train: bool, profiles: Optional[np.ndarray] = None
                 ) -> tf.data.Dataset:
        histories = np.array([pad_history(h, self.config.max_history) for h, _ in pairs], np.int32)
        items = np.array([t for _, t in pairs], np.int32)
        # Targets: (-1 user, item[, negative], item, history): copies of the item and the history
        # are not negatives.
        x = {"history": histories, "item": items}
        if profiles is not None:
            x["profile"] = profiles
        views = [-np.ones((len(items), 1), np.int32), items[:, None]]
        if self.config.hard_negatives:
            x["negative"] = text_hard_negatives(pairs, self.text_vectors)
            views.append(x["negative"][:, None])
        ids = np.concatenate(views + [items[:, None], histories], 1)
        ds = tf.data.Dataset.from_tensor_slices((x, ids))
        if train:
            ds = ds.shuffle(len(items), seed=self.seed).repeat()
        return ds.batch(batch_size, drop_remainder=train).prefetch(2)

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        if self.examples is not None:
            return self._transformed("train", batch_size, train=True)
        return self._dataset(self.train_examples, batch_size, train=True, profiles=self.example_profiles)

    def validation_dataset(self, batch_size: int) -> tf.data.Dataset:
        if self.examples is not None:
            return self._transformed("eval", batch_size, train=False).take(self.validation_steps or 10)
        return self._dataset(self.validation, batch_size, train=False, profiles=self.validation_profiles)

    def num_train_examples(self) -> int:
        return len(self.train_examples)

    def evaluate(self, model: keras.Model) -> Dict[str, Any]:
        if self.examples is not None:
            batches = list(self.validation_dataset(64).as_numpy_iterator())
            padded = np.concatenate([x["history"] for x, _ in batches])
            histories = [[i for i in row if i >= 0] for row in padded]
            targets = np.concatenate([x["item"] for x, _ in batches])
            profiles = None
        else:
            histories, targets, profiles = self.test_histories, self.test_items, self.test_profiles
            padded = np.array([pad_history(h, self.config.max_history) for h in histories], np.int32)
        scores = np.asarray(model.scores(padded, profiles))
        return ranking_metrics(_excluding(scores, histories), targets, self.config.top_k)

    def finish(self, model: keras.Model) -> Dict[str, Any]:
        if self.examples is not None:
            return {}
        baselines = baseline_scores(self.train_histories, self.test_histories, self.text_vectors)
        return {"baselines": {name: ranking_metrics(_excluding(s, self.test_histories), self.test_items,
                                                     self.config.top_k) for name, s in baselines.items()}}

    def export(self, model: keras.Model, export_dir: str) -> str:
        module = RecommenderExport(model, self.tokenizer, self.items, self.config.top_k,
                                   transform_output=self.transform_output,
                                   profile_encoder=self.text_model if self.config.use_profile_text else None,
                                   profile_length=self.config.item_text_length)
        return save_export(module, export_dir)
