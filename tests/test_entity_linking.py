"""Entity linking: leftmost-longest alias matching aligned with WordPiece tokens."""
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.knowledge.entity_linking import EntityLinker, alias_report, linker_for_knowledge_dir, read_alias_table
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


def test_entity_ids_that_are_not_whole_numbers_from_zero_are_refused(tok):
    # Before: -1 linked "Paris" to "no entity" and 2.7 to entity 2, without a word.
    for bad in (-1, 2.7, "3", None):
        with pytest.raises(ValueError, match=r"entity ids must be integers >= 0, got \{'Paris': .*\} \(1 of 2 "):
            EntityLinker(tok, {"New York": 1, "Paris": bad})
    with pytest.raises(TypeError, match="EntityLinker.max_alias_words must be an integer, got 2.5"):
        EntityLinker(tok, {"Paris": 3}, max_alias_words=2.5)
    assert EntityLinker(tok, {"Paris": np.int64(3)}).link_pieces(["paris"]).to_list() == [[3]]


def test_aliases_the_linker_cannot_use_are_counted_not_dropped(tmp_path, tok):
    """Each row of the alias file is used or counted: before, a repeated alias silently replaced the
    first, and aliases that were too long or clashed after normalization vanished from the table."""
    (tmp_path / "entities.json").write_text('{"paris_fr": 0, "paris_tx": 1, "ny": 2}')
    (tmp_path / "aliases.tsv").write_text(
        "Paris\tparis_fr\n"
        "Paris\tparis_tx\n"                        # the same alias again: the first row wins
        "PARIS\tparis_tx\n"                        # "paris" once lower-cased: another entity's alias
        "paris\tparis_fr\n"                        # the same words and the same entity: harmless
        "new york\tny\n"
        "I love new york university a lot\tny\n"   # 7 words, more than max_alias_words (6)
        "\u200b\tny\n"                             # no word once normalized
        "Nowhere\tatlantis\n", encoding="utf-8")
    linker = linker_for_knowledge_dir(tok, str(tmp_path / "aliases.tsv"), str(tmp_path))
    assert dict(linker.rejected_aliases) == {"unknown_entity": 1, "repeated_alias": 1,
                                             "alias_of_another_entity_after_normalization": 1,
                                             "alias_over_max_words": 1, "alias_without_words": 1}
    assert alias_report(linker) == {"rejected_aliases": dict(linker.rejected_aliases)} and alias_report(None) == {}
    assert linker.link_pieces(["PARIS new york"]).to_list() == [[0, 2, 2]]
