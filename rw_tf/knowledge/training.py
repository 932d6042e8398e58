"""Training and evaluating TransE from files or a packaged dataset (``rw-tf kg train|eval``).

A model directory holds ``transe.keras``, ``entities.json``/``relations.json`` (label -> id) and
``metrics.json``.

Example:
    >>> result = train_transe(TransEConfig(dataset="nations", epochs=5), "/tmp/kg")  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Dict, Optional, Tuple

import keras
import numpy as np

from rw_tf.config import DictConfig
from rw_tf.errors import CorruptFileError
from rw_tf.knowledge.evaluation import filtered_ranks, rank_metrics, transe_scores
from rw_tf.knowledge.graph import (
    KnowledgeGraph,
    label_ids,
    load_pykeen_dataset,
    load_triples,
    read_entity_vocabulary,
)
from rw_tf.knowledge.transe import TransE
from rw_tf.model_files import load_keras_file
from rw_tf.training.strategy import create_strategy, wait_for_all_workers, worker_output_dir


@dataclasses.dataclass
class TransEConfig(DictConfig):
    dataset: Optional[str] = None          # a pykeen-packaged dataset, or the three files below
    train_file: Optional[str] = None
    valid_file: Optional[str] = None
    test_file: Optional[str] = None
    embedding_dim: int = 50
    norm: int = 1
    margin: float = 1.0
    num_negatives: int = 1
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 0.01
    strategy: str = "default"
    seed: int = 0

    def validate(self) -> None:
        if self.dataset:   # the dataset brings its three splits
            self.require_defaults(["train_file", "valid_file", "test_file"], "without dataset")


def load_splits(config: TransEConfig) -> Tuple[KnowledgeGraph, KnowledgeGraph, KnowledgeGraph]:
    if config.dataset:
        return load_pykeen_dataset(config.dataset)
    if not (config.train_file and config.test_file):
        raise ValueError("give --dataset, or --train and --test (and optionally --valid) triple files")
    train = load_triples(config.train_file)
    if len(train) == 0:
        raise ValueError(f"no valid triples in {config.train_file} ({dict(train.rejects.counts)} rejected)")
    valid = (load_triples(config.valid_file, train.entity_to_id, train.relation_to_id) if config.valid_file
             else KnowledgeGraph(train.triples[:0], train.entity_to_id, train.relation_to_id))
    test = load_triples(config.test_file, train.entity_to_id, train.relation_to_id)
    return train, without_training_triples(valid, train), checked_test_triples(test, train, config.test_file)


def without_training_triples(held_out: KnowledgeGraph, train: KnowledgeGraph) -> KnowledgeGraph:
    """``held_out`` less the triples that training also holds (a fact the model was trained on
    would be ranked as if it were unseen), counted as ``in_train`` rejects."""
    known = set(map(tuple, train.triples.tolist()))
    keep = np.array([tuple(t) not in known for t in held_out.triples.tolist()], bool)
    if not keep.all():
        held_out.rejects.counts["in_train"] += int((~keep).sum())
    return dataclasses.replace(held_out, triples=held_out.triples[keep])


def checked_test_triples(test: KnowledgeGraph, train: Optional[KnowledgeGraph], source: str) -> KnowledgeGraph:
    """``test`` less the training triples (when ``train`` is given); none left is an error, raised
    before any training."""
    test = without_training_triples(test, train) if train is not None else test
    if len(test) == 0:
        raise ValueError(f"no test triples in {source} (rejected: {dict(test.rejects.counts) or 'none'})")
    return test


def evaluate(model: TransE, train: KnowledgeGraph, valid: KnowledgeGraph, test: KnowledgeGraph) -> Dict[str, float]:
    ranks = filtered_ranks(transe_scores(model), test.triples, [train.triples, valid.triples, test.triples])
    return rank_metrics(ranks)


def train_transe(config: TransEConfig, output_dir: str, verbose: Any = "auto") -> Dict[str, Any]:
    strategy = create_strategy(config.strategy)   # first: a multi-worker strategy must precede any op
    # Held from the start: the chief locks output_dir, so a second run into it stops before training.
    with worker_output_dir(output_dir, strategy) as out_dir:   # only the chief's files stay
        result = _train_transe(config, strategy, out_dir, verbose)
    wait_for_all_workers(strategy)
    return result


def _train_transe(config: TransEConfig, strategy, out_dir: str, verbose: Any) -> Dict[str, Any]:
    train, valid, test = load_splits(config)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = TransE(train.num_entities, train.num_relations, config.embedding_dim, config.norm, config.margin,
                       config.num_negatives, seed=config.seed)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    model.build_for_training((train.triples[:config.batch_size],))   # fit then trains on every batch
    start = time.perf_counter()
    history = model.fit(train.triples, epochs=config.epochs, batch_size=config.batch_size, shuffle=True,
                        verbose=verbose)
    seconds = time.perf_counter() - start
    metrics = evaluate(model, train, valid, test)
    result = {"config": dataclasses.asdict(config), "test_metrics": metrics, "train_seconds": seconds,
              "final_loss": float(history.history["loss"][-1]),
              "rejected_rows": {split: dict(g.rejects.counts) for split, g in
                                (("train", train), ("valid", valid), ("test", test)) if g.rejects.total}}
    os.makedirs(out_dir, exist_ok=True)
    model.save(os.path.join(out_dir, "transe.keras"))
    for name, vocab in (("entities", train.entity_to_id), ("relations", train.relation_to_id)):
        with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return result


def load_model_dir(model_dir: str) -> Tuple[TransE, Dict[str, int], Dict[str, int]]:
    path = os.path.join(model_dir, "transe.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no transe.keras in {model_dir}")
    entities = read_entity_vocabulary(model_dir)
    relations = label_ids(os.path.join(model_dir, "relations.json"), "relation")
    model = load_keras_file(path, TransE)
    if (model.num_entities, model.num_relations) != (len(entities), len(relations)):
        raise CorruptFileError(f"{path} embeds {model.num_entities} entities and {model.num_relations} relations, "
                               f"but {model_dir} lists {len(entities)} and {len(relations)}: the files are from "
                               "different runs")
    return model, entities, relations


def evaluate_model_dir(model_dir: str, config: TransEConfig) -> Dict[str, Any]:
    """Filtered metrics of a saved model on ``config``'s test split (ids mapped by the saved vocab)."""
    model, entities, relations = load_model_dir(model_dir)
    if config.dataset:
        train, valid, test = load_pykeen_dataset(config.dataset)
        if train.entity_to_id != entities or train.relation_to_id != relations:
            raise ValueError(f"the model in {model_dir} was not trained on {config.dataset}'s vocabulary")
    else:
        if not config.test_file:
            raise ValueError("give --dataset or --test")
        train = load_triples(config.train_file, entities, relations) if config.train_file else None
        test = checked_test_triples(load_triples(config.test_file, entities, relations), train, config.test_file)
        train = test if train is None else train
        valid = load_triples(config.valid_file, entities, relations) if config.valid_file else test
    return {"test_metrics": evaluate(model, train, valid, test), "test_triples": len(test),
            "rejected_rows": dict(test.rejects.counts)}
