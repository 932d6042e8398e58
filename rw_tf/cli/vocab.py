"""``rw-tf vocab``: learn a WordPiece vocabulary from text files or the embedded corpus."""
from __future__ import annotations

import argparse

from rw_tf.data.corpus import SplitCounts, describe_drops, embedded_corpus, read_text_files, text_files
from rw_tf.path_checks import require_inputs_outside
from rw_tf.tokenization import learn_vocabulary, write_vocabulary


def add_vocab(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vocab", help="learn a WordPiece vocabulary from text files (or the embedded corpus)")
    p.add_argument("--output", required=True, help="where to write vocab.txt")
    p.add_argument("--input", nargs="*", default=[], help="UTF-8 text files; default: the embedded corpus")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--min-count", type=int, default=2, help="ignore words seen fewer times")
    p.add_argument("--no-lower-case", dest="lower_case", action="store_false",
                   help="keep case and accents (cased vocabulary)")
    p.set_defaults(func=run_vocab)


def run_vocab(args: argparse.Namespace) -> int:
    drops = SplitCounts()
    files = text_files(args.input)   # expanded once: checked against --output, then read
    require_inputs_outside(files, [args.output], "--output replaces it")
    docs = read_text_files(files, counts=drops) if files else embedded_corpus(counts=drops)
    if not docs:
        raise ValueError(f"no usable document in the input (a document needs two sentences of 20+ characters; "
                         f"dropped: {describe_drops(drops)})")
    vocab = learn_vocabulary((s for d in docs for s in d), args.vocab_size, lower_case=args.lower_case,
                             min_count=args.min_count)
    write_vocabulary(vocab, args.output)
    print(f"wrote {len(vocab)} tokens learned from {len(docs)} documents to {args.output} "
          f"(dropped: {describe_drops(drops)})")
    return 0
