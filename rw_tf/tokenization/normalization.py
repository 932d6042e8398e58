"""Text normalization and pre-tokenization as TensorFlow ops (shared by tokenizer and vocab learner).

Rules, in order (they mirror BERT's BasicTokenizer so imported BERT vocabularies line up):
1. invalid UTF-8 byte sequences become U+FFFD (``unicode_transcode(errors="replace")``);
2. tab/newline/carriage return become spaces; control/format/private-use characters and U+FFFD are
   removed (BERT's ``_clean_text``);
3. optional lower-casing (Unicode ``tf.strings.lower``), optional accent stripping (NFD, then drop
   combining marks), optional extra Unicode normalization (NFC/NFKC/...);
4. split on white space (ASCII white space and every Unicode space separator, Zs: no-break space,
   em space, ideographic space ..., as BERT's ``_is_whitespace``); every punctuation character
   (ASCII symbols and Unicode P*) becomes its own word; optionally every CJK ideograph becomes its
   own word.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

_WHITESPACE = r"[\s\p{Zs}]+"   # RE2's \s is ASCII only; web text is full of U+00A0 (&nbsp;)
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
_CJK = "|".join([
    r"[\x{4E00}-\x{9FFF}]", r"[\x{3400}-\x{4DBF}]", r"[\x{20000}-\x{2A6DF}]",
    r"[\x{2A700}-\x{2B73F}]", r"[\x{2B740}-\x{2B81F}]", r"[\x{2B820}-\x{2CEAF}]",
    r"[\x{F900}-\x{FAFF}]", r"[\x{2F800}-\x{2FA1F}]",
])


def repair_utf8(texts: tf.Tensor) -> tf.Tensor:
    """Rule 1 alone: invalid UTF-8 byte sequences become U+FFFD; valid text is unchanged."""
    return tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)


def normalize_text(texts: tf.Tensor, lower_case: bool, strip_accents: bool,
                   normalization_form: str | None = None) -> tf.Tensor:
    """Applies rules 1-3 to a string tensor of any shape."""
    texts = repair_utf8(texts)
    texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
    texts = tf.strings.regex_replace(texts, r"[\p{Cc}\p{Cf}\p{Co}\p{Cs}\x{FFFD}]", "")
    if lower_case:
        texts = tf.strings.lower(texts, encoding="utf-8")
    if strip_accents:
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
    if normalization_form:
        texts = tf_text.normalize_utf8(texts, normalization_form)
    return texts


def split_patterns(split_cjk: bool) -> tuple:
    """``(delim_regex_pattern, keep_delim_regex_pattern)`` of rule 4 for ``tf_text.regex_split``."""
    keep = _PUNCTUATION + ("|" + _CJK if split_cjk else "")
    return _WHITESPACE + "|" + keep, keep


def split_words(texts: tf.Tensor, split_cjk: bool) -> tf.RaggedTensor:
    """Rule 4: splits a 1-D string tensor into words, ``RaggedTensor[batch, (words)]``."""
    delim, keep = split_patterns(split_cjk)
    return tf_text.regex_split(texts, delim_regex_pattern=delim, keep_delim_regex_pattern=keep)
