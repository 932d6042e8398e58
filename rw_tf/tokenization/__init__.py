"""WordPiece tokenization on tensorflow-text (graph mode, exportable)."""
from rw_tf.tokenization.vocab import learn_vocabulary, write_vocabulary
from rw_tf.tokenization.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer, read_vocabulary

__all__ = ["SPECIAL_TOKENS", "WordPieceTokenizer", "learn_vocabulary", "read_vocabulary", "write_vocabulary"]
