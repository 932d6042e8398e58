"""A WordPiece tokenizer that runs in graph mode and saves its vocabulary as a SavedModel asset.

Example:
    >>> tok = WordPieceTokenizer("vocab.txt")                       # doctest: +SKIP
    >>> tok.tokenize(["Hello, world!"]).to_list()                  # doctest: +SKIP
    [[7592, 1010, 2088, 999]]
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from rw_tf.data.lines import BYTE_ORDER_MARK, compression, read_bounded
from rw_tf.layers.id_checks import checked_ids
from rw_tf.tokenization.normalization import normalize_text, repair_utf8, split_patterns, split_words

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_VOCAB_BYTES = 1 << 28   # BERT's 30,522 tokens take 230 KB

TextInput = Union[str, bytes, Sequence[str], Sequence[bytes], np.ndarray, tf.Tensor]


def as_string_tensor(texts: TextInput) -> tf.Tensor:
    """Converts user input to a 1-D ``tf.string`` tensor, with a clear error for anything else."""
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    if isinstance(texts, (tf.Tensor, tf.RaggedTensor)):
        if texts.dtype != tf.string:
            raise TypeError(f"texts must be strings, got a tensor of dtype {texts.dtype.name}")
        tensor = texts
    else:
        items = list(texts) if not isinstance(texts, np.ndarray) else texts.tolist()
        bad = [type(t).__name__ for t in items if not isinstance(t, (str, bytes))]
        if bad:
            raise TypeError(f"texts must be str or bytes, got {sorted(set(bad))}")
        tensor = tf.constant(items, dtype=tf.string) if items else tf.zeros([0], tf.string)
    if tensor.shape.rank != 1:
        raise ValueError(f"texts must be a 1-D batch of strings, got rank {tensor.shape.rank}")
    return tensor


def read_vocabulary(vocab_file: str, special_tokens: Sequence[str] = ()) -> List[str]:
    """The tokens of a vocabulary file, one per line. A file that TensorFlow's lookup table would
    refuse (an empty line, a token twice) or misread (bytes that are not UTF-8, Windows line ends,
    a byte order mark),
    or that lacks one of ``special_tokens``, is a ``ValueError`` naming the file (and the line)."""
    if not tf.io.gfile.exists(vocab_file):
        raise FileNotFoundError(f"vocabulary file not found: {vocab_file}")
    if tf.io.gfile.isdir(vocab_file):
        raise ValueError(f"vocabulary file {vocab_file} is a folder")
    data = read_bounded(vocab_file, MAX_VOCAB_BYTES, "vocabulary file")
    kind = compression(data[:6])
    if kind:   # TensorFlow's lookup table (and the SavedModel's asset) reads the file as it is
        raise ValueError(f"vocabulary file {vocab_file} is {kind}-compressed: decompress it (one token per line)")
    if data.startswith(BYTE_ORDER_MARK):   # the lookup table would read it as part of the first token
        raise ValueError(f"vocabulary file {vocab_file} starts with a UTF-8 byte order mark: save it without one")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if not lines:
        raise ValueError(f"vocabulary file is empty: {vocab_file}")
    vocab: List[str] = []
    first_line: Dict[str, int] = {}
    for number, raw in enumerate(lines, 1):
        where = f"vocabulary {vocab_file} line {number}"
        try:
            token = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{where} is not UTF-8 text (byte 0x{raw[err.start]:02x} at byte {err.start})") from None
        if token.endswith("\r"):
            raise ValueError(f"{where} ends with a carriage return: convert the file to \\n line ends")
        if not token:
            raise ValueError(f"{where} is empty: a vocabulary holds one token per line")
        if token in first_line:
            raise ValueError(f"{where} repeats the token {token!r} of line {first_line[token]}")
        first_line[token] = number
        vocab.append(token)
    missing = [t for t in special_tokens if t not in first_line]
    if missing:
        raise ValueError(f"vocabulary {vocab_file} lacks special tokens {missing}")
    if special_tokens and len(vocab) == len(set(special_tokens)):   # masking's random tokens come from the rest
        raise ValueError(f"vocabulary {vocab_file} holds only the special tokens {list(special_tokens)}: "
                         "it needs word pieces to read text")
    return vocab


# The settings a tokenizer is built with besides its vocabulary (``get_config`` without the file),
# and the types each accepts: they travel in exports' ``tokenizer.json``.
SETTING_TYPES = {"lower_case": (bool,), "strip_accents": (bool, type(None)), "split_cjk": (bool,),
                 "normalization_form": (str, type(None)), "max_chars_per_word": (int,)}
NORMALIZATION_FORMS = ("NFC", "NFD", "NFKC", "NFKD")


def check_settings(settings: Dict[str, Any], source: str) -> None:
    """``ValueError`` naming ``source`` unless ``settings`` are known tokenizer settings of the
    right types and ranges."""
    unknown = sorted(set(settings) - set(SETTING_TYPES))
    if unknown:
        raise ValueError(f"{source}: unknown tokenizer settings {unknown} (known: {sorted(SETTING_TYPES)})")
    for key, value in settings.items():
        types = SETTING_TYPES[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"{source}: tokenizer setting {key} must be {names}, got {value!r}")
    form = settings.get("normalization_form")
    if form is not None and form not in NORMALIZATION_FORMS:
        raise ValueError(f"{source}: normalization_form must be one of {list(NORMALIZATION_FORMS)} or null, "
                         f"got {form!r}")
    if settings.get("max_chars_per_word", 1) < 1:
        raise ValueError(f"{source}: max_chars_per_word must be positive, got {settings['max_chars_per_word']}")


class WordPieceTokenizer(tf.Module):
    """BERT-style WordPiece tokenizer built on ``tensorflow_text.WordpieceTokenizer``.

    The vocabulary is read through a ``tf.lookup`` table initialized from ``vocab_file``, so a
    ``tf.saved_model.save`` of any module that holds this tokenizer copies the file into the
    SavedModel's ``assets/`` and the exported graph tokenizes raw strings with no Python.

    Args:
        vocab_file: one token per line; must contain ``[PAD] [UNK] [CLS] [SEP] [MASK]``.
        lower_case: lower-case text before splitting.
        strip_accents: remove accents (NFD, drop combining marks); defaults to ``lower_case``.
        split_cjk: make every CJK ideograph its own word (needed for Chinese/Japanese text).
        normalization_form: optional extra Unicode normalization ("NFC", "NFKC", ...).
        max_chars_per_word: longer words become ``[UNK]`` (protects against pathological input).

    Example:
        >>> tok = WordPieceTokenizer("vocab.txt", lower_case=True)   # doctest: +SKIP
        >>> ids = tok.tokenize(["Déjà vu"])                           # RaggedTensor [1, (n)]
    """

    def __init__(self, vocab_file: str, lower_case: bool = True, strip_accents: Optional[bool] = None,
                 split_cjk: bool = True, normalization_form: Optional[str] = None,
                 max_chars_per_word: int = 100, name: str = "wordpiece_tokenizer") -> None:
        super().__init__(name=name)
        self.vocab_file = os.fspath(vocab_file)
        check_settings({"lower_case": lower_case, "strip_accents": strip_accents, "split_cjk": split_cjk,
                        "normalization_form": normalization_form, "max_chars_per_word": max_chars_per_word},
                       f"WordPieceTokenizer({self.vocab_file})")
        self.vocabulary = read_vocabulary(self.vocab_file, SPECIAL_TOKENS)
        index = {tok: i for i, tok in enumerate(self.vocabulary)}
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            index[t] for t in SPECIAL_TOKENS)
        self.special_ids = sorted({index[t] for t in SPECIAL_TOKENS})
        self.lower_case = lower_case
        self.strip_accents = lower_case if strip_accents is None else strip_accents
        self.split_cjk = split_cjk
        self.normalization_form = normalization_form
        self.max_chars_per_word = max_chars_per_word
        initializer = tf.lookup.TextFileInitializer(
            self.vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
        self._table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=1)
        self._wordpiece = tf_text.WordpieceTokenizer(
            self._table, suffix_indicator="##", max_bytes_per_word=4 * max_chars_per_word,
            max_chars_per_token=None, token_out_type=tf.int64, unknown_token="[UNK]")

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def split_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Normalized words of a 1-D string tensor: ``RaggedTensor[batch, (words)]`` of strings."""
        normalized = normalize_text(texts, self.lower_case, self.strip_accents, self.normalization_form)
        return split_words(normalized, self.split_cjk)

    def tokenize_words(self, texts: TextInput) -> tf.RaggedTensor:
        """Token ids grouped by word: ``RaggedTensor[batch, (words), (pieces)]`` of int64."""
        texts = as_string_tensor(texts)
        return self._wordpiece.tokenize(self.split_words(texts))

    def tokenize(self, texts: TextInput) -> tf.RaggedTensor:
        """Token ids of each text: ``RaggedTensor[batch, (pieces)]`` of int64."""
        return self.tokenize_words(texts).merge_dims(-2, -1)

    def tokenize_with_offsets(self, texts: TextInput) -> Tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """Token ids grouped by word plus each word's byte span in the *source* text.

        Returns ``(ids [batch, (words), (pieces)], starts [batch, (words)], ends [batch, (words)])``;
        ``text[start:end]`` (bytes) is the word as written, before lower-casing or accent stripping,
        so spans found on pieces map back to the caller's text. The words are split on the source
        text and normalized one by one; words that normalize to nothing (control characters) are
        dropped, so the merged ids equal ``tokenize(texts)``. Offsets index the text after invalid
        UTF-8 has been replaced by U+FFFD (``repair_utf8``), which is the text itself when valid.
        """
        texts = repair_utf8(as_string_tensor(texts))
        delim, keep = split_patterns(self.split_cjk)
        # tf_text's regex_split stops at a NUL byte; \x01 has the same length and is removed later.
        texts = tf.strings.regex_replace(texts, "\\x00", "\x01")
        words, starts, ends = tf_text.regex_split_with_offsets(texts, delim_regex_pattern=delim,
                                                               keep_delim_regex_pattern=keep)
        normalized = words.with_flat_values(normalize_text(words.flat_values, self.lower_case,
                                                           self.strip_accents, self.normalization_form))
        keep_word = tf.strings.length(normalized) > 0
        normalized, starts, ends = (tf.ragged.boolean_mask(t, keep_word) for t in (normalized, starts, ends))
        return self._wordpiece.tokenize(normalized), starts, ends

    def ids_to_tokens(self, ids: Any) -> List[List[str]]:
        """Python helper for inspection: token strings of a batch of id rows (a ragged tensor, a
        matrix or lists of unequal length). An id outside the vocabulary is a ``ValueError``, not
        "[UNK]" (an id of the vocabulary's own "[UNK]" gives "[UNK]")."""
        rows = ids.to_list() if isinstance(ids, tf.RaggedTensor) else [np.asarray(row).tolist() for row in ids]
        checked_ids(np.asarray([i for row in rows for i in row]), len(self.vocabulary), "ids",
                    limit="the vocabulary size")
        return [[self.vocabulary[int(i)] for i in row] for row in rows]

    def get_config(self) -> Dict[str, Any]:
        return {"vocab_file": self.vocab_file, "lower_case": self.lower_case,
                "strip_accents": self.strip_accents, "split_cjk": self.split_cjk,
                "normalization_form": self.normalization_form,
                "max_chars_per_word": self.max_chars_per_word}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "WordPieceTokenizer":
        return cls(**config)
