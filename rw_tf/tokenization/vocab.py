"""Learning a WordPiece vocabulary from a corpus with tensorflow-text's learner.

Words are produced by exactly the tokenizer's own normalization and splitting, so a learned
vocabulary always matches the tokenizer that will use it.

Example:
    >>> from rw_tf.data.corpus import embedded_corpus
    >>> sentences = [s for doc in embedded_corpus(max_documents=20) for s in doc]
    >>> vocab = learn_vocabulary(sentences, vocab_size=500)
    >>> vocab[:5]
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
"""
from __future__ import annotations

import collections
from typing import Iterable, List, Optional, Sequence

import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from rw_tf.atomic_write import atomic_write
from rw_tf.config import checks_number_arguments
from rw_tf.tokenization.normalization import normalize_text, split_words
from rw_tf.tokenization.wordpiece import SPECIAL_TOKENS


def count_words(texts: Iterable[str], lower_case: bool = True, strip_accents: Optional[bool] = None,
                split_cjk: bool = True, batch_size: int = 1024) -> collections.Counter:
    """Counts normalized words, using the tokenizer's own TF normalization in batches."""
    strip_accents = lower_case if strip_accents is None else strip_accents
    counts: collections.Counter = collections.Counter()
    batch: List[str] = []

    def flush() -> None:
        words = split_words(normalize_text(tf.constant(batch), lower_case, strip_accents), split_cjk)
        counts.update(w.decode("utf-8") for w in words.flat_values.numpy())
        batch.clear()

    for text in texts:
        if not isinstance(text, (str, bytes)):
            raise TypeError(f"corpus texts must be str or bytes, got {type(text).__name__}")
        batch.append(text)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return counts


@checks_number_arguments()
def learn_vocabulary(texts: Iterable[str], vocab_size: int = 8000,
                     reserved_tokens: Sequence[str] = SPECIAL_TOKENS, lower_case: bool = True,
                     strip_accents: Optional[bool] = None, split_cjk: bool = True,
                     min_count: int = 2) -> List[str]:
    """Learns a WordPiece vocabulary (reserved tokens first) from raw texts."""
    if vocab_size <= len(reserved_tokens):
        raise ValueError(f"vocab_size must exceed the {len(reserved_tokens)} reserved tokens")
    counts = count_words(texts, lower_case, strip_accents, split_cjk)
    if not counts:
        raise ValueError("cannot learn a vocabulary from an empty corpus")
    vocab = learner.learn(list(counts.items()), vocab_size=vocab_size,
                          reserved_tokens=list(reserved_tokens), lower_thresh=min_count,
                          max_unique_chars=2000)
    return list(vocab)


def write_vocabulary(vocab: Sequence[str], path: str) -> str:
    """Writes one token per line; returns ``path``."""
    with atomic_write(path) as f:
        f.write("".join(token + "\n" for token in vocab))
    return path
