import unicodedata

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from rw_tf.tokenization import SPECIAL_TOKENS, WordPieceTokenizer, learn_vocabulary, write_vocabulary


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory):
    vocab = list(SPECIAL_TOKENS) + ["hello", "world", ",", "!", "cafe", "你", "好", "the", "##s", "cat",
                                    "Hello", "Café", "é", "a", "##b"]
    return write_vocabulary(vocab, str(tmp_path_factory.mktemp("v") / "vocab.txt"))


def test_lower_case_strips_accents_and_splits_punctuation(small_vocab):
    tok = WordPieceTokenizer(small_vocab)
    assert tok.ids_to_tokens(tok.tokenize(["Hello, WORLD! Café cats"]))[0] == [
        "hello", ",", "world", "!", "cafe", "cat", "##s"]


def test_cased_tokenizer_keeps_case_and_accents(small_vocab):
    tok = WordPieceTokenizer(small_vocab, lower_case=False)
    assert tok.ids_to_tokens(tok.tokenize(["Hello Café"]))[0] == ["Hello", "Café"]


def test_cjk_splitting_is_configurable(small_vocab):
    on = WordPieceTokenizer(small_vocab, split_cjk=True)
    off = WordPieceTokenizer(small_vocab, split_cjk=False)
    assert on.ids_to_tokens(on.tokenize(["你好"]))[0] == ["你", "好"]
    assert off.ids_to_tokens(off.tokenize(["你好"]))[0] == ["[UNK]"]


def test_ids_outside_the_vocabulary_are_refused_not_shown_as_unk(small_vocab):
    tok = WordPieceTokenizer(small_vocab)
    assert tok.ids_to_tokens([[5, 6], [7]]) == [["hello", "world"], [","]]    # rows of unequal length
    assert tok.ids_to_tokens(np.array([[1.0, 5.0]])) == [["[UNK]", "hello"]]   # whole-number floats, Keras-like
    # Before: each of these printed "[UNK]" (or raised "list indices must be integers").
    for bad, words in (([[5, -1]], "got values from -1 to 5"), ([[len(tok.vocabulary)]], "got values from 20 to 20"),
                       ([[1.5]], "ids must be whole-number ids in [0, 20)")):
        with pytest.raises(ValueError) as raised:
            tok.ids_to_tokens(bad)
        assert words in str(raised.value) and "(the vocabulary size)" in str(raised.value)


def test_bad_text_is_handled_by_rule(small_vocab):
    tok = WordPieceTokenizer(small_vocab)
    out = tok.ids_to_tokens(tok.tokenize([b"hello \xff\xfe world", "", "\x00\u200b", "a" * 100_000]))
    assert out[0] == ["hello", "world"]          # invalid UTF-8 becomes U+FFFD, then removed
    assert out[1] == [] and out[2] == []         # empty / only control or format characters
    assert out[3] == ["[UNK]"]                   # words over max_chars_per_word become [UNK]


def test_every_unicode_space_separates_words_as_in_bert(small_vocab):
    """BERT's BasicTokenizer (``_is_whitespace``: category Zs) and tensorflow-text's BertTokenizer
    split at a no-break space (``&nbsp;`` in every web page), an em space or an ideographic space;
    RE2's ``\\s`` is ASCII only, so "hello\u00a0world" was one word, [UNK]."""
    spaces = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Zs"]
    assert len(spaces) == 17 and "\u00a0" in spaces and "\u3000" in spaces
    tok = WordPieceTokenizer(small_vocab)
    peer = tf_text.BertTokenizer(small_vocab, lower_case=True, token_out_type=tf.int64)
    texts = [f"hello{space}world{space}cats" for space in spaces] + ["\u00a0 hello,\u202fworld\u3000"]
    ours = tok.ids_to_tokens(tok.tokenize(texts))
    assert ours == [["hello", "world", "cat", "##s"]] * 17 + [["hello", ",", "world"]]
    # The peer splits where NFKC makes a space, which leaves out U+1680 (Ogham space mark) alone.
    theirs = tok.ids_to_tokens(peer.tokenize(texts).merge_dims(-2, -1))
    assert [spaces[i] for i in range(17) if ours[i] != theirs[i]] == ["\u1680"] and ours[17] == theirs[17]
    ids, starts, ends = tok.tokenize_with_offsets(texts)   # spans map back to the words as written
    assert all(texts[i].encode()[a:b] in (b"hello", b"world", b"cats", b",")
               for i in range(len(texts)) for a, b in zip(starts[i].numpy(), ends[i].numpy()))
    assert ids.merge_dims(-2, -1).to_list() == tok.tokenize(texts).to_list()


def test_non_string_inputs_get_clear_errors(small_vocab):
    tok = WordPieceTokenizer(small_vocab)
    with pytest.raises(TypeError, match="must be str or bytes"):
        tok.tokenize([1, 2])
    with pytest.raises(TypeError, match="dtype int32"):
        tok.tokenize(tf.constant([1, 2]))
    with pytest.raises(ValueError, match="1-D batch"):
        tok.tokenize(tf.constant([["a"]]))
    assert tok.tokenize([]).shape[0] == 0


def test_vocabulary_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        WordPieceTokenizer(str(tmp_path / "nope.txt"))
    bad = write_vocabulary(["[PAD]", "hello"], str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="special tokens"):
        WordPieceTokenizer(bad)


def test_learned_vocabulary_covers_corpus(tokenizer, pydoc_documents):
    assert tokenizer.vocabulary[:5] == list(SPECIAL_TOKENS)
    ids = tokenizer.tokenize([s for d in pydoc_documents[:20] for s in d]).flat_values.numpy()
    assert (ids == tokenizer.unk_id).mean() < 0.01
    with pytest.raises(ValueError, match="empty corpus"):
        learn_vocabulary([], vocab_size=100)


def test_exported_tokenizer_carries_vocab_asset(tmp_path, small_vocab):
    import shutil

    vocab_copy = str(tmp_path / "vocab.txt")
    shutil.copy(small_vocab, vocab_copy)
    tok = WordPieceTokenizer(vocab_copy)

    class Exported(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = tok

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, texts):
            return self.tokenizer.tokenize(texts).to_tensor()

    module = Exported()
    expected = module(tf.constant(["Hello cats"])).numpy()
    tf.saved_model.save(module, str(tmp_path / "saved"))
    import os
    os.remove(vocab_copy)  # the SavedModel must not depend on the original file
    assert os.path.exists(tmp_path / "saved" / "assets" / "vocab.txt")
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_array_equal(loaded(tf.constant(["Hello cats"])).numpy(), expected)
