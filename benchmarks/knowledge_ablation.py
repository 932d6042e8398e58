"""Ablation of knowledge injection on the Nations domain demo (rw_tf.knowledge.demo).

    .venv/bin/python benchmarks/knowledge_ablation.py [--steps 1500] [--seeds 0 1 2] [--layer 0]

Every variant pretrains the same tiny encoder (MLM + NSP + SOP) on the same examples for the same
number of steps; evaluation masks held-out sentences (facts from the test triples) deterministically.
Variants: no knowledge; additive (ERNIE-style) and gated injection of frozen TransE entity
embeddings (trained on the train triples) after block ``--layer``; gated + KD: a fresh gated model
trained with L_MLM + L_NSP + L_SOP + alpha L_KD, the knowledge model f_K being the trained gated
model of the same seed (alpha = ``--kd-weight``, temperature ``--kd-temperature``). Entity ids of masked tokens are
hidden from the input; the held-out text is masked with five seeds. Reports masked-LM accuracy on all masked
tokens and on entity tokens.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from rw_tf.config import EncoderConfig, PretrainingDataConfig  # noqa: E402
from rw_tf.data.pretraining_dataset import pretraining_dataset, pretraining_features, to_keras_triplet  # noqa: E402
from rw_tf.data.segment_pairs import segment_pair_candidates  # noqa: E402
from rw_tf.knowledge import TransE  # noqa: E402
from rw_tf.knowledge.demo import nations_demo  # noqa: E402
from rw_tf.knowledge.entity_linking import EntityLinker  # noqa: E402
from rw_tf.models import PretrainingModel, add_distillation_targets  # noqa: E402
from rw_tf.networks import KnowledgeEnhancedEncoder, TransformerEncoder  # noqa: E402
from rw_tf.tokenization import WordPieceTokenizer, learn_vocabulary, write_vocabulary  # noqa: E402


def evaluate(model, eval_batches) -> dict:
    correct = total = ent_correct = ent_total = 0.0
    for features in eval_batches:
        x, _, _ = to_keras_triplet(features)
        predicted = np.argmax(np.asarray(model(x, training=False)["mlm"]), axis=-1)
        weights = features["masked_weights"].numpy()
        hit = (predicted == features["masked_ids"].numpy()) * weights
        entity = (features["masked_entity_ids"].numpy() >= 0) * weights
        correct, total = correct + hit.sum(), total + weights.sum()
        ent_correct, ent_total = ent_correct + (hit * entity).sum(), ent_total + entity.sum()
    return {"mlm_accuracy": correct / total, "entity_accuracy": ent_correct / max(ent_total, 1),
            "entity_tokens": int(ent_total)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--layer", type=int, default=0)
    parser.add_argument("--transe-epochs", type=int, default=200)
    parser.add_argument("--kd-weight", type=float, default=1.0)
    parser.add_argument("--kd-temperature", type=float, default=2.0)
    args = parser.parse_args()

    demo = nations_demo()
    sentences = [s for d in demo.train_documents for s in d]
    vocab_path = write_vocabulary(learn_vocabulary(sentences, vocab_size=400, min_count=1),
                                  "/tmp/rw_tf_nations_vocab.txt")
    tokenizer = WordPieceTokenizer(vocab_path)
    linker = EntityLinker(tokenizer, demo.alias_to_entity)
    data_config = PretrainingDataConfig(max_sequence_length=32, max_predictions_per_seq=5, whole_word_masking=True)
    train_pairs = segment_pair_candidates(demo.train_documents, target_words=6, seed=0)
    eval_pairs = segment_pair_candidates(demo.eval_documents, target_words=6, seed=1)
    # Several deterministic maskings of the held-out text, for more evaluated entity tokens.
    eval_batches = [batch for mask_seed in range(5) for batch in pretraining_features(
        eval_pairs, tokenizer, dataclasses.replace(data_config, seed=1000 + mask_seed), 64, shuffle=False,
        repeat=False, drop_remainder=False, linker=linker)]
    encoder_config = EncoderConfig.preset("tiny", vocab_size=tokenizer.vocab_size, max_sequence_length=32)

    results = {name: [] for name in ("no knowledge", "additive injection", "gated injection", "gated injection + KD")}
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        transe = TransE(demo.train.num_entities, demo.train.num_relations, embedding_dim=32, seed=seed)
        transe.compile(optimizer=keras.optimizers.Adam(0.01))
        transe.fit(demo.train.triples, epochs=args.transe_epochs, batch_size=128, verbose=0)
        entity_vectors = np.asarray(transe.entity_embedding.embeddings)
        trained = {}
        for name in results:
            keras.utils.set_random_seed(seed)
            if name == "no knowledge":
                encoder = TransformerEncoder.from_encoder_config(encoder_config)
            else:
                encoder = KnowledgeEnhancedEncoder(num_entities=demo.train.num_entities, entity_embedding_dim=32,
                                                   knowledge_layers=(args.layer,), fusion=name.split()[0],
                                                   **encoder_config.to_dict())
                encoder.set_entity_embeddings(entity_vectors)
            distill = name.endswith("+ KD")
            model = PretrainingModel(encoder, kd_weight=args.kd_weight if distill else 0.0,
                                     kd_temperature=args.kd_temperature)
            model.compile(optimizer=keras.optimizers.AdamW(1e-3))
            data = pretraining_dataset(train_pairs, tokenizer, data_config, 32, linker=linker)
            if distill:
                data = add_distillation_targets(data, trained["gated injection"])
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
            trained[name] = model
            results[name].append(evaluate(model, eval_batches))
            print(seed, name, results[name][-1], flush=True)

    print(f"\nNations domain demo: tiny encoder, {args.steps} steps x batch 32, injection after block {args.layer}, "
          f"seeds {args.seeds} (mean ± sd); eval = facts of the test triples")
    print(f"{'variant':22s} {'MLM acc (all)':>16s} {'MLM acc (entity tokens)':>24s}")
    for name, runs in results.items():
        def fmt(key, runs=runs):
            values = [r[key] for r in runs]
            return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"
        print(f"{name:22s} {fmt('mlm_accuracy'):>16s} {fmt('entity_accuracy'):>24s}")
    print(f"entity tokens evaluated per run: {runs[0]['entity_tokens']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
