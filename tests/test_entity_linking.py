"""Entity linking: leftmost-longest alias matching aligned with WordPiece tokens."""
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.knowledge.entity_linking import EntityLinker, read_alias_table
from rw_tf.tokenization import SPECIAL_TOKENS, WordPieceTokenizer, write_vocabulary


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    vocab = list(SPECIAL_TOKENS) + ["i", "love", "new", "york", "university", "paris", "!", ".", "u", "s",
                                    "visit", "the", "##ed", "kin", "##ship", "a", "cafe", ","]
    return WordPieceTokenizer(write_vocabulary(vocab, str(tmp_path_factory.mktemp("v") / "vocab.txt")))


@pytest.fixture(scope="module")
def linker(tok):
    return EntityLinker(tok, {"New York": 1, "York University": 2, "Paris": 3, "U.S.": 4, "kinship": 5,
                              "café": 6, "new": 7})


def pieces_and_ids(tok, linker, text):
    return tok.ids_to_tokens(tok.tokenize([text]))[0], linker.link_pieces([text]).to_list()[0]


def test_leftmost_longest_overlap(tok, linker):
    tokens, ids = pieces_and_ids(tok, linker, "I love New York University!")
    assert tokens == ["i", "love", "new", "york", "university", "!"]
    assert ids == [-1, -1, 1, 1, -1, -1]     # "new york" wins over "new" and "york university"


def test_case_accents_and_punctuation(tok, linker):
    _, ids = pieces_and_ids(tok, linker, "PARIS, paris. Visit the U.S. Cafe")
    assert ids == [3, -1, 3, -1, -1, -1, 4, 4, 4, 4, 6]


def test_subword_pieces_share_the_entity(tok, linker):
    tokens, ids = pieces_and_ids(tok, linker, "a kinship")
    assert tokens == ["a", "kin", "##ship"] and ids == [-1, 5, 5]


def test_batch_alignment_and_empty_text(tok, linker):
    out = linker.link_pieces(["", "Paris", "love paris new"])
    assert out.to_list() == [[], [3], [-1, 3, 7]]
    assert tok.tokenize(["", "Paris", "love paris new"]).row_lengths().numpy().tolist() == \
        out.row_lengths().numpy().tolist()


def test_works_inside_tf_function(tok, linker):
    fn = tf.function(lambda t: linker.link_pieces(t).to_tensor(-1), input_signature=[tf.TensorSpec([None], tf.string)])
    np.testing.assert_array_equal(fn(tf.constant(["new york", "paris"])).numpy(), [[1, 1], [3, -1]])


def test_alias_table_rejects(tmp_path, tok):
    path = tmp_path / "aliases.tsv"
    path.write_bytes(b"Paris\tparis_fr\nLondon\tlondon_uk\nbad line\n\xff\tparis_fr\n# comment\n")
    aliases, rejects = read_alias_table(str(path), {"paris_fr": 0})
    assert aliases == {"Paris": 0}
    assert dict(rejects) == {"unknown_entity": 1, "malformed": 1, "invalid_utf8": 1}
    with pytest.raises(ValueError, match="empty"):
        EntityLinker(tok, {})
