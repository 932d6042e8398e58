"""Batch inference from raw text: rw-tf's exported SavedModel against KerasHub's model plus its
preprocessor, and rw-tf's tokenizer against Hugging Face ``tokenizers``, in one run.

    .venv/bin/python benchmarks/infer_throughput.py [--presets tiny small base] [--precisions float32 mixed_bfloat16]
        [--length 128] [--batch-size 64] [--texts 1024] [--repeats 3] [--skip-tokenizer]

Model rows. rw-tf: a ``PretrainingModel`` of the preset (random weights: only throughput is measured)
exported by the library (``PretrainingExport``, written with ``save_export`` as every task's export
is), loaded back with ``tf.saved_model.load`` and called through its ``encode_text`` signature:
raw strings -> WordPiece -> [CLS] text [SEP] padded to ``--length`` -> encoder -> mean embedding.
KerasHub 0.25.1 (``uv pip install --no-deps keras-hub==0.25.1``): ``BertBackbone`` of the same sizes
and ``BertTextClassifierPreprocessor`` (``BertTokenizer`` over the same vocabulary file,
``sequence_length=--length``) in one ``tf.function``: raw strings -> preprocessor -> backbone ->
pooled output. Both get the same texts (sentences of the embedded corpus), batch size, padded length
and Keras dtype policy; their calls are interleaved and each reports its median batch time. The
"same ids" column is the share of texts that both preprocessors turn into identical token ids.

Tokenizer row. rw-tf's ``WordPieceTokenizer.tokenize`` (tensorflow-text ops in a ``tf.function``,
batches of 1,024) against ``tokenizers``' ``BertWordPieceTokenizer.encode_batch`` (run in
``.venv-ref`` by ``benchmarks/reference/hf_tokenizer_throughput.py``; its Rust thread pool on all
cores and on one thread) over every sentence of the embedded corpus, best of ``--repeats`` passes,
with the share of texts tokenized to identical ids.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401

from rw_tf.config import EncoderConfig  # noqa: E402
from rw_tf.data.corpus import embedded_corpus  # noqa: E402
from rw_tf.data.text_inputs import single_segment_inputs  # noqa: E402
from rw_tf.export.base import save_export  # noqa: E402
from rw_tf.export.pretraining import PretrainingExport  # noqa: E402
from rw_tf.models import PretrainingModel  # noqa: E402
from rw_tf.networks import TransformerEncoder  # noqa: E402
from rw_tf.tokenization import WordPieceTokenizer, learn_vocabulary, write_vocabulary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_PYTHON = os.path.join(ROOT, ".venv-ref", "bin", "python")


def corpus_sentences() -> list:
    return [s for doc in embedded_corpus() for s in doc]


def rw_tf_export(sizes: EncoderConfig, tokenizer: WordPieceTokenizer, length: int, export_dir: str):
    """The library's raw-text export of a freshly built pretraining model, loaded back."""
    model = PretrainingModel(TransformerEncoder.from_encoder_config(sizes))
    inputs = single_segment_inputs(tokenizer, tf.constant(["Build the weights."]), length)
    model({**inputs, "masked_positions": tf.zeros((1, 2), tf.int32)}, training=False)
    save_export(PretrainingExport(model, tokenizer, length), export_dir)
    encode = tf.saved_model.load(export_dir).signatures["encode_text"]
    return lambda texts: encode(text=texts)["mean_embedding"]


def keras_hub_model(sizes: EncoderConfig, vocab: str, length: int):
    """KerasHub's preprocessor and backbone of the same sizes, as one graph from raw strings."""
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=sizes.vocab_size, num_layers=sizes.num_layers, num_heads=sizes.num_heads,
        hidden_dim=sizes.hidden_size, intermediate_dim=sizes.intermediate_size, dropout=sizes.dropout,
        max_sequence_length=sizes.max_sequence_length)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True), sequence_length=length)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed(texts):
        return tf.cast(backbone(preprocessor(texts), training=False)["pooled_output"], tf.float32)

    return embed, preprocessor


def same_ids(tokenizer, preprocessor, texts, length: int) -> float:
    ours = single_segment_inputs(tokenizer, tf.constant(texts), length)["token_ids"].numpy()
    theirs = preprocessor(tf.constant(texts))["token_ids"].numpy()
    return float(np.mean(np.all(ours == theirs, axis=1)))


def median_batch_seconds(calls: dict, batches: list, repeats: int) -> dict:
    """Median seconds per batch of every call, the calls interleaved batch by batch."""
    for call in calls.values():
        call(batches[0]).numpy()                          # trace and warm up: not timed
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for batch in batches:
            for name, call in calls.items():
                start = time.perf_counter()
                call(batch).numpy()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def model_rows(args, tokenizer, vocab, sentences, workdir):
    rng = np.random.default_rng(0)
    texts = [sentences[i] for i in rng.choice(len(sentences), args.texts, replace=False)]
    batches = [tf.constant(texts[i:i + args.batch_size]) for i in range(0, len(texts), args.batch_size)]
    print("| preset | length | batch | precision | rw-tf export texts/s | KerasHub texts/s | ratio | same ids |\n"
          "|---|---|---|---|---|---|---|---|", flush=True)
    for preset in args.presets:
        sizes = EncoderConfig.preset_for_length(preset, tokenizer.vocab_size, args.length)
        for precision in args.precisions:
            keras.mixed_precision.set_global_policy(precision)
            try:
                keras.utils.set_random_seed(0)
                ours = rw_tf_export(sizes, tokenizer, args.length, os.path.join(workdir, f"{preset}-{precision}"))
                theirs, preprocessor = keras_hub_model(sizes, vocab, args.length)
            finally:
                keras.mixed_precision.set_global_policy("float32")
            agreement = same_ids(tokenizer, preprocessor, texts, args.length)
            seconds = median_batch_seconds({"rw-tf": ours, "KerasHub": theirs}, batches, args.repeats)
            rate = {name: args.batch_size / s for name, s in seconds.items()}
            print(f"| {preset} | {args.length} | {args.batch_size} | {precision} | {rate['rw-tf']:,.0f} | "
                  f"{rate['KerasHub']:,.0f} | {rate['rw-tf'] / rate['KerasHub']:.2f}x | {agreement:.1%} |", flush=True)
            keras.backend.clear_session()


def tokenizer_row(args, tokenizer, vocab, sentences, workdir):
    texts_file, hf_out = os.path.join(workdir, "texts.json"), os.path.join(workdir, "hf.json")
    with open(texts_file, "w") as f:
        json.dump(sentences, f)
    if not os.path.exists(REFERENCE_PYTHON):
        print(f"\n(tokenizer row skipped: {REFERENCE_PYTHON} missing; scripts/ensure_reference_env.sh builds it)")
        return
    batch = 1024
    tokenize = tf.function(lambda t: tokenizer.tokenize(t), input_signature=[tf.TensorSpec([None], tf.string)])
    batches = [tf.constant(sentences[i:i + batch]) for i in range(0, len(sentences), batch)]
    ours = [ids for b in batches for ids in tokenize(b).to_list()]
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for b in batches:
            tokenize(b).flat_values.numpy()
        best = min(best, time.perf_counter() - start)
    subprocess.run([REFERENCE_PYTHON, os.path.join(ROOT, "benchmarks", "reference", "hf_tokenizer_throughput.py"),
                    vocab, texts_file, hf_out, "--batch-size", str(batch), "--repeats", str(args.repeats)], check=True)
    with open(hf_out) as f:
        hf = json.load(f)
    identical = np.mean([a == b for a, b in zip(ours, hf["ids"])])
    tokens = sum(len(ids) for ids in ours)
    ours_rate = len(sentences) / best
    print(f"\n{len(sentences):,} corpus sentences, {tokens:,} tokens (rw-tf), identical ids: {identical:.2%}\n"
          "| tokenizer | texts/s | rw-tf / it |\n|---|---|---|")
    print(f"| rw-tf WordPieceTokenizer (tensorflow-text) | {ours_rate:,.0f} | 1.00x |")
    for key, label in (("threads", "HF tokenizers, Rust thread pool on all cores"),
                       ("one_thread", "HF tokenizers, one thread")):
        print(f"| {label} | {hf['texts_per_s'][key]:,.0f} | {ours_rate / hf['texts_per_s'][key]:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--skip-tokenizer", action="store_true")
    args = parser.parse_args()

    sentences = corpus_sentences()
    with tempfile.TemporaryDirectory(prefix="rw_tf_infer_") as workdir:
        vocab = write_vocabulary(learn_vocabulary(sentences, args.vocab_size), os.path.join(workdir, "vocab.txt"))
        tokenizer = WordPieceTokenizer(vocab)
        model_rows(args, tokenizer, vocab, sentences, workdir)
        if not args.skip_tokenizer:
            tokenizer_row(args, tokenizer, vocab, sentences, workdir)


if __name__ == "__main__":
    sys.exit(main())
