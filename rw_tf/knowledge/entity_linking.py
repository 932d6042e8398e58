"""Entity linking by alias lookup, as TensorFlow ops (tf.data, tf.Transform, exported graphs).

Rules:
- aliases and text are normalized and split into words by the *tokenizer's own* rules (so with a
  lower-casing tokenizer "Paris", "PARIS" and "paris" are the same alias, accents are stripped, and
  punctuation is a word of its own: the alias "U.S." matches the text "U.S.");
- matching is leftmost-longest over words: scanning left to right, the longest alias starting at a
  word wins and its words cannot start or join another match ("new york" beats "york university"
  in "new york university"); aliases are at most ``max_alias_words`` words;
- every WordPiece of a linked word carries the entity id; unlinked pieces carry -1.
Alias rows naming entities outside the entity vocabulary are rejected and counted, and so is every
alias the linker cannot use: a repeat of an alias (the first row wins), an alias of no words or of
more than ``max_alias_words``, and one that normalizes to the words of an earlier alias of another
entity ("Paris" and "PARIS" under a lower-casing tokenizer). ``linker_for_knowledge_dir`` keeps
the counts in ``rejected_aliases``; tasks report them with their data.

Example:
    >>> linker = EntityLinker(tokenizer, {"new york": 3, "paris": 5})               # doctest: +SKIP
    >>> linker.link_pieces(["I love New York!"]).to_list()                          # doctest: +SKIP
    [[-1, -1, 3, 3, -1]]
"""
from __future__ import annotations

import collections
import logging
from typing import Dict, Mapping, Optional, Tuple

import tensorflow as tf

from rw_tf.config import checks_number_arguments, is_integer
from rw_tf.data.lines import bounded_lines, open_input
from rw_tf.knowledge.graph import read_entity_vocabulary
from rw_tf.tokenization.wordpiece import WordPieceTokenizer, as_string_tensor


def read_alias_table(path: str, entity_to_id: Mapping[str, int]) -> Tuple[Dict[str, int], collections.Counter]:
    """``alias<TAB>entity_label`` lines -> {alias: entity id}; returns the rejects per reason too."""
    aliases: Dict[str, int] = {}
    rejects: collections.Counter = collections.Counter()
    with open_input(path, decompress=True) as f:
        for raw, too_long in bounded_lines(f, source=path):
            if too_long:
                rejects["line_too_long"] += 1
                continue
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                rejects["invalid_utf8"] += 1
                continue
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not all(x.strip() for x in fields):
                rejects["malformed"] += 1
                continue
            alias, entity = (x.strip() for x in fields)
            if entity not in entity_to_id:
                rejects["unknown_entity"] += 1
            elif alias in aliases:
                rejects["repeated_alias"] += 1
            else:
                aliases[alias] = entity_to_id[entity]
    return aliases, rejects


def linker_for_knowledge_dir(tokenizer: WordPieceTokenizer, alias_file: Optional[str],
                             knowledge_dir: Optional[str]) -> Optional["EntityLinker"]:
    """An ``EntityLinker`` over ``alias_file`` with the entity ids of a ``rw-tf kg train`` output
    (None without ``knowledge_dir``: no knowledge mode); its ``rejected_aliases`` counts the rows
    of the file and the aliases it could not use (logged too)."""
    if not knowledge_dir:
        return None
    aliases, rejects = read_alias_table(alias_file, read_entity_vocabulary(knowledge_dir))
    linker = EntityLinker(tokenizer, aliases)
    linker.rejected_aliases.update(rejects)
    if linker.rejected_aliases:
        logging.getLogger("rw_tf.knowledge").warning("aliases rejected in %s: %s", alias_file,
                                                     dict(linker.rejected_aliases))
    return linker


def alias_report(linker: Optional["EntityLinker"]) -> Dict[str, Dict[str, int]]:
    """``{"rejected_aliases": counts}`` for a task's data report in knowledge mode, else ``{}``."""
    return {"rejected_aliases": dict(linker.rejected_aliases)} if linker is not None else {}


@checks_number_arguments()
class EntityLinker(tf.Module):
    def __init__(self, tokenizer: WordPieceTokenizer, alias_to_entity: Mapping[str, int],
                 max_alias_words: int = 6, name: str = "entity_linker") -> None:
        super().__init__(name=name)
        if not alias_to_entity:
            raise ValueError("the alias table is empty")
        # -1 is "no entity" in the linked ids, and a float would be truncated to another entity.
        not_ids = {a: e for a, e in alias_to_entity.items() if not (is_integer(e) and e >= 0)}
        if not_ids:
            raise ValueError(f"entity ids must be integers >= 0, got {dict(list(not_ids.items())[:3])}"[:300]
                             + f" ({len(not_ids)} of {len(alias_to_entity)} aliases)")
        self.tokenizer = tokenizer
        aliases = list(alias_to_entity)
        words = tokenizer.split_words(tf.constant(aliases))
        keys = tf.strings.reduce_join(words, axis=1, separator=" ").numpy()
        lengths = words.row_lengths().numpy()
        table: Dict[bytes, int] = {}
        self.rejected_aliases: collections.Counter = collections.Counter()
        for key, length, alias in zip(keys, lengths, aliases):
            entity = int(alias_to_entity[alias])
            if length == 0:
                self.rejected_aliases["alias_without_words"] += 1
            elif length > max_alias_words:
                self.rejected_aliases["alias_over_max_words"] += 1
            elif table.setdefault(key, entity) != entity:   # the first alias wins on normalized clashes
                self.rejected_aliases["alias_of_another_entity_after_normalization"] += 1
        if not table:
            raise ValueError(f"no alias has 1..{max_alias_words} words after normalization")
        self.max_alias_words = int(min(max_alias_words, max(lengths)))
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(table)), tf.constant(list(table.values()), tf.int64)),
            default_value=-1)

    def link_words(self, texts) -> Tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """(words [batch, (w)] strings, entity id per word [batch, (w)] int64, -1 = none)."""

        words = self.tokenizer.split_words(as_string_tensor(texts))
        dense = words.to_tensor("")
        num_words = tf.shape(dense)[1]
        best_len = tf.zeros_like(dense, tf.int32)
        best_ent = tf.fill(tf.shape(dense), tf.constant(-1, tf.int64))
        for n in range(self.max_alias_words, 0, -1):
            # n-gram starting at each word (padding "" words never complete a real alias).
            grams = tf.strings.ngrams(dense, n, separator=" ", pad_values=None)
            ids = self._table.lookup(grams)
            ids = tf.pad(ids, [[0, 0], [0, num_words - tf.shape(ids)[1]]], constant_values=-1)
            take = tf.logical_and(ids >= 0, best_len == 0)
            best_len = tf.where(take, n, best_len)
            best_ent = tf.where(take, ids, best_ent)

        def step(state, position):
            next_free, current = state
            length, entity, index = position
            start = tf.logical_and(index >= next_free, length > 0)
            next_free = tf.where(start, index + length, next_free)
            current = tf.where(start, entity, current)
            return (next_free, current), tf.where(index < next_free, current, tf.constant(-1, tf.int64))

        batch = tf.shape(dense)[0]
        positions = (tf.transpose(best_len), tf.transpose(best_ent),
                     tf.broadcast_to(tf.range(num_words)[:, None], [num_words, batch]))
        state = (tf.zeros([batch], tf.int32), tf.fill([batch], tf.constant(-1, tf.int64)))
        outputs = tf.scan(lambda acc, p: step(acc[0], p), positions,
                          initializer=(state, tf.fill([batch], tf.constant(-1, tf.int64))))
        per_word = tf.transpose(outputs[1])
        return words, tf.RaggedTensor.from_tensor(per_word, lengths=words.row_lengths())

    def link_pieces(self, texts) -> tf.RaggedTensor:
        """Entity id of every WordPiece token of ``tokenizer.tokenize(texts)``: [batch, (pieces)]."""
        words, per_word = self.link_words(texts)
        pieces = self.tokenizer._wordpiece.tokenize(words)          # [batch, (words), (pieces)]
        repeated = tf.repeat(per_word.flat_values, pieces.values.row_lengths())
        return tf.RaggedTensor.from_row_lengths(repeated, tf.reduce_sum(pieces.row_lengths(axis=2), axis=1))
