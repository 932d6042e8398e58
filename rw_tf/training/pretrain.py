"""The pretraining experiment: corpus in, trained model + vocabulary + metrics out.

Writes to ``output_dir``: ``vocab.txt``, ``model.keras`` (reload with ``keras.saving.load_model``
after ``import rw_tf``), ``metrics.json``, TensorBoard logs in ``logs/``, per-epoch weights in
``checkpoints/`` and a ``backup/`` that ``BackupAndRestore`` uses to resume an interrupted run
(re-running the same command continues from the last finished epoch).

Example:
    >>> result = run_pretraining(PretrainRunConfig(output_dir="/tmp/run", preset="tiny",
    ...                                            epochs=1, steps_per_epoch=10))  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence

import keras
import tensorflow as tf

from rw_tf.config import EncoderConfig, PretrainingDataConfig
from rw_tf.data.corpus import Document, embedded_corpus, read_text_files
from rw_tf.data.pretraining_dataset import pretraining_dataset
from rw_tf.data.segment_pairs import segment_pair_candidates
from rw_tf.models.pretraining import PretrainingModel
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.tokenization import WordPieceTokenizer, learn_vocabulary, write_vocabulary
from rw_tf.training.strategy import get_strategy


@dataclasses.dataclass
class PretrainRunConfig:
    """Everything a pretraining run needs; every field is a ``rw-tf pretrain`` flag."""

    output_dir: str
    preset: str = "tiny"
    corpus_files: Sequence[str] = ()
    max_documents: Optional[int] = None
    vocab_file: Optional[str] = None
    vocab_size: int = 8000
    lower_case: bool = True
    target_words: int = 40
    max_sequence_length: int = 128
    max_predictions_per_seq: int = 20
    whole_word_masking: bool = False
    batch_size: int = 32
    epochs: int = 3
    steps_per_epoch: int = 100
    eval_fraction: float = 0.05
    eval_batches: int = 8
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    nsp_weight: float = 1.0
    sop_weight: float = 1.0
    strategy: str = "default"
    jit_compile: bool = False
    seed: int = 12345
    verbose: Any = "auto"


def load_documents(config: PretrainRunConfig) -> List[Document]:
    if config.corpus_files:
        docs = read_text_files(config.corpus_files)
    else:
        docs = embedded_corpus(max_documents=config.max_documents)
    if config.max_documents is not None:
        docs = docs[:config.max_documents]
    if len(docs) < 4:
        raise ValueError(f"the corpus has {len(docs)} usable documents (>= 2 sentences each); need at least 4")
    return docs


def split_documents(docs: List[Document], eval_fraction: float, seed: int):
    """Holds out whole documents for evaluation, so no eval pair shares a document with training."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_eval = max(2, int(round(len(docs) * eval_fraction)))
    eval_ids = set(order[:n_eval])
    return ([d for i, d in enumerate(docs) if i not in eval_ids],
            [d for i, d in enumerate(docs) if i in eval_ids])


def build_optimizer(config: PretrainRunConfig) -> keras.optimizers.Optimizer:
    total = max(1, config.epochs * config.steps_per_epoch)
    warmup = min(config.warmup_steps, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(1, total - warmup), alpha=0.1,
        warmup_target=config.learning_rate, warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay, clipnorm=1.0)
    optimizer.exclude_from_weight_decay(var_names=["layer_norm", "bias"])  # BERT's decay exclusions
    return optimizer


def run_pretraining(config: PretrainRunConfig,
                    extra_callbacks: Sequence[keras.callbacks.Callback] = ()) -> Dict[str, Any]:
    """Runs the experiment and returns the metrics also written to ``metrics.json``.

    ``extra_callbacks`` run after the built-in ones (backup, TensorBoard, checkpoints).
    """
    os.makedirs(config.output_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    docs = load_documents(config)
    train_docs, eval_docs = split_documents(docs, config.eval_fraction, config.seed)

    vocab_path = os.path.join(config.output_dir, "vocab.txt")
    if config.vocab_file:
        tf.io.gfile.copy(config.vocab_file, vocab_path, overwrite=True)
    elif not os.path.exists(vocab_path):  # a resumed run keeps the vocabulary it started with
        vocab = learn_vocabulary((s for d in train_docs for s in d), config.vocab_size,
                                 lower_case=config.lower_case)
        write_vocabulary(vocab, vocab_path)
    tokenizer = WordPieceTokenizer(vocab_path, lower_case=config.lower_case)

    data_config = PretrainingDataConfig(
        max_sequence_length=config.max_sequence_length,
        max_predictions_per_seq=config.max_predictions_per_seq,
        whole_word_masking=config.whole_word_masking, seed=config.seed)
    train_pairs = segment_pair_candidates(train_docs, config.target_words, config.seed)
    eval_pairs = segment_pair_candidates(eval_docs, config.target_words, config.seed + 1)
    train_ds = pretraining_dataset(train_pairs, tokenizer, data_config, config.batch_size)
    eval_ds = pretraining_dataset(eval_pairs, tokenizer, data_config, config.batch_size,
                                  shuffle=False, repeat=True).take(config.eval_batches).cache()

    encoder_config = EncoderConfig.preset_for_length(config.preset, tokenizer.vocab_size, config.max_sequence_length)
    strategy = get_strategy(config.strategy)
    with strategy.scope():
        model = PretrainingModel(TransformerEncoder.from_encoder_config(encoder_config),
                                 nsp_weight=config.nsp_weight, sop_weight=config.sop_weight,
                                 name="pretraining_model")
        model.compile(optimizer=build_optimizer(config), jit_compile=config.jit_compile)
        # BackupAndRestore can only restore into a built model.
        model.build({k: tuple(v.shape) for k, v in train_ds.element_spec[0].items()})

    backup_dir = os.path.join(config.output_dir, "backup")
    resuming = os.path.isdir(backup_dir) and bool(os.listdir(backup_dir))
    initial = None if resuming else model.evaluate(eval_ds, verbose=0, return_dict=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir),
        keras.callbacks.TensorBoard(os.path.join(config.output_dir, "logs")),
        keras.callbacks.ModelCheckpoint(
            os.path.join(config.output_dir, "checkpoints", "epoch-{epoch:03d}.weights.h5"),
            save_weights_only=True),
        *extra_callbacks,
    ]
    # NSP/SOP read segment means, not the [CLS] pooler (that is trained by fine-tuning heads),
    # so Keras's "no gradient for pooler" warning is expected here.
    warnings.filterwarnings("ignore", message="Gradients do not exist for variables.*pooler")
    start = time.time()
    history = model.fit(train_ds, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
                        validation_data=eval_ds, callbacks=callbacks, verbose=config.verbose)
    train_seconds = time.time() - start
    final = model.evaluate(eval_ds, verbose=0, return_dict=True)
    model_path = os.path.join(config.output_dir, "model.keras")
    model.save(model_path)

    result = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()},
        "encoder": encoder_config.to_dict(),
        "num_documents": len(docs), "train_pairs": len(train_pairs["text_a"]),
        "eval_pairs": len(eval_pairs["text_a"]), "vocab_size": tokenizer.vocab_size,
        "initial_eval": initial, "final_eval": final,
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "train_seconds": train_seconds, "model_path": model_path, "vocab_path": vocab_path,
        "resumed": resuming,
    }
    with open(os.path.join(config.output_dir, "metrics.json"), "w") as f:
        json.dump(result, f, indent=2, default=float)
    return result
