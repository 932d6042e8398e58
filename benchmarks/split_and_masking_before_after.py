"""Before/after of two measurement fixes: the pretraining split and whole-word masking.

    python benchmarks/split_and_masking_before_after.py [--steps 400] [--seed 0]

1. The evaluation split. Before: segment pairs were built from every document and ExampleGen
   split the *pairs* by hash, so consecutive pairs of one document (which share a segment) landed
   on both sides. After (today's PrepareData): exact-duplicate sentences removed, documents
   assigned to train/eval first, pairs built inside each side. Both variants come from the same
   deduplicated documents; the same model trains for the same steps on each training side and is
   scored on its own evaluation side, which is what the pipeline's masked-LM gate reads.
2. Whole-word masking. Before: words were taken in random order until the first one that did not
   fit the 15% budget. After: such a word is skipped (BERT's create_masked_lm_predictions) and an
   example with a candidate always gets a mask. Measured on the pipeline's own settings
   (vocabulary 8,000, sequence 128, 20 predictions) and on short segments (target 6 words).
The "before" masking rule is the old line of ``choose_masked_tokens``, patched in for the run.
"""
from __future__ import annotations

import argparse
import random
import time

import keras
import numpy as np
import tensorflow as tf

import rw_tf.data.masking as masking
from rw_tf.config import EncoderConfig, PretrainingDataConfig
from rw_tf.data.corpus import embedded_corpus
from rw_tf.data.masking import PretrainingExampleBuilder
from rw_tf.data.pretraining_dataset import pretraining_dataset
from rw_tf.data.segment_pairs import segment_pair_candidates
from rw_tf.data.splits import deduplicate_sentences, split_documents
from rw_tf.models import PretrainingModel
from rw_tf.networks import TransformerEncoder
from rw_tf.tokenization import WordPieceTokenizer, learn_vocabulary, write_vocabulary


def old_fill_budget(sizes, budget, max_size):
    """The rule before the fix: a prefix of the shuffled words, ending at the first that overflows."""
    return tf.logical_and(tf.cumsum(sizes, axis=1) <= budget[:, None], sizes > 0)


def masking_rates(tokenizer, columns, config, n=4000):
    builder = PretrainingExampleBuilder(tokenizer, config)
    feats = builder({k: tf.constant(columns[k][:n]) for k in ("text_a", "text_b", "text_random")})
    token_ids, weights = feats["token_ids"].numpy(), feats["masked_weights"].numpy()
    candidates = (~np.isin(token_ids, [tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id])).sum(axis=1)
    chosen = weights.sum(axis=1)
    return chosen.sum() / candidates.sum(), float(np.mean(chosen == 0)), len(chosen)


def shared_segments(train, evaluation):
    seen = set(train["text_a"]) | set(train["text_b"])
    return float(np.mean([a in seen or b in seen for a, b in zip(evaluation["text_a"], evaluation["text_b"])]))


def train_and_score(tokenizer, train, evaluation, steps, seed):
    keras.utils.set_random_seed(seed)
    config = PretrainingDataConfig(max_sequence_length=128, max_predictions_per_seq=20, seed=seed)
    model = PretrainingModel(TransformerEncoder.from_encoder_config(
        EncoderConfig.preset_for_length("tiny", tokenizer.vocab_size, 128)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(pretraining_dataset(train, tokenizer, config, 32), steps_per_epoch=steps, epochs=1, verbose=0)
    eval_ds = pretraining_dataset(evaluation, tokenizer, config, 32, shuffle=False, repeat=False,
                                  drop_remainder=False)
    return model.evaluate(eval_ds, verbose=0, return_dict=True)["mlm_accuracy"]


def split_table(docs, removed, train_docs, eval_docs, tokenizer, args) -> None:
    """Trains the same model on the leaky and the clean split and prints both gate accuracies."""
    every_pair = segment_pair_candidates(docs, 40, args.seed)
    order = list(range(len(every_pair["text_a"])))
    random.Random(args.seed).shuffle(order)
    cut = int(round(len(order) * (1 - args.eval_fraction)))
    leaky = [{k: [v[i] for i in part] for k, v in every_pair.items()} for part in (order[:cut], order[cut:])]
    clean = [segment_pair_candidates(train_docs, 40, args.seed), segment_pair_candidates(eval_docs, 40, args.seed + 1)]
    rows = []
    for name, (train, evaluation) in (("before: pairs split by hash", leaky), ("after: documents split first", clean)):
        started = time.time()
        accuracy = train_and_score(tokenizer, train, evaluation, args.steps, args.seed)
        rows.append((name, len(train["text_a"]), len(evaluation["text_a"]), shared_segments(train, evaluation),
                     accuracy, time.time() - started))
    print(f"\nPretraining split on the embedded corpus ({len(docs)} documents; removed first: {removed}; "
          f"tiny preset, {args.steps} steps, batch 32, seed {args.seed})\n")
    print("| split | train pairs | eval pairs | eval pairs sharing a segment with training | gate MLM accuracy |")
    print("|---|---|---|---|---|")
    for name, n_train, n_eval, shared, accuracy, _ in rows:
        print(f"| {name} | {n_train:,} | {n_eval:,} | {shared:.1%} | {accuracy:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-fraction", type=float, default=0.05)
    parser.add_argument("--masking-only", action="store_true", help="skip the two training runs")
    args = parser.parse_args()

    docs, removed = deduplicate_sentences(embedded_corpus())
    train_docs, eval_docs, _ = split_documents(docs, args.eval_fraction, args.seed)
    vocab = write_vocabulary(learn_vocabulary((s for d in train_docs for s in d), 8000),
                             f"/tmp/split_masking_vocab_{args.seed}.txt")
    tokenizer = WordPieceTokenizer(vocab)

    # 1. Splits: pairs split by hash (before) vs documents split first (after).
    if not args.masking_only:
        split_table(docs, removed, train_docs, eval_docs, tokenizer, args)

    # 2. Whole-word masking: the old prefix rule vs today's, where the rule matters: a vocabulary
    # that splits words into several pieces and short segments with budgets of a few tokens.
    print("\nWhole-word masking (15% budget), the pipeline's settings and smaller ones\n")
    print("| vocabulary | length | predictions | words per segment | rule | tokens masked | examples without "
          "a mask | examples |")
    print("|---|---|---|---|---|---|---|---|")
    current = masking._fill_budget
    vocabularies = {}
    for vocab_size, length, predictions, words in ((4000, 64, 10, 25), (4000, 64, 10, 6), (400, 32, 5, 6)):
        if vocab_size not in vocabularies:
            path = write_vocabulary(learn_vocabulary((s for d in train_docs for s in d), vocab_size),
                                    f"/tmp/split_masking_vocab_{vocab_size}_{args.seed}.txt")
            vocabularies[vocab_size] = WordPieceTokenizer(path)
        columns = segment_pair_candidates(train_docs, words, args.seed)
        config = PretrainingDataConfig(max_sequence_length=length, max_predictions_per_seq=predictions,
                                       whole_word_masking=True)
        for rule_name, rule in (("before", old_fill_budget), ("after", current)):
            masking._fill_budget = rule
            try:
                rate, empty, n = masking_rates(vocabularies[vocab_size], columns, config)
            finally:
                masking._fill_budget = current
            print(f"| {vocab_size:,} | {length} | {predictions} | {words} | {rule_name} | {rate:.2%} | {empty:.1%} "
                  f"| {n:,} |", flush=True)

if __name__ == "__main__":
    main()
