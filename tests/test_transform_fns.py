"""The Transform preprocessing functions under tf.Transform (in-memory Beam), incl. knowledge mode."""
import json

import numpy as np
import tensorflow as tf

from rw_tf.data.transform_fns import (
    PretrainingTransformConfig,
    TextTransformConfig,
    classification_preprocessing_fn,
    pretraining_preprocessing_fn,
)
from rw_tf.tokenization import SPECIAL_TOKENS, write_vocabulary


def run_transform(tmp_path, fn, rows, spec):
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam

    metadata = tft.DatasetMetadata.from_feature_spec(spec)
    with tft_beam.Context(temp_dir=str(tmp_path / "tft"), force_tf_compat_v1=False):
        (data, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
    return data, transform_fn


def test_pretraining_fn_with_entity_linking(tmp_path):
    vocab = write_vocabulary(list(SPECIAL_TOKENS) + ["usa", "china", "uk", "embassy", "treaties", "."],
                             str(tmp_path / "vocab.txt"))
    knowledge = tmp_path / "kg"
    knowledge.mkdir()
    (knowledge / "entities.json").write_text(json.dumps({"usa": 0, "china": 1, "uk": 2}))
    (tmp_path / "aliases.tsv").write_text("usa\tusa\nchina\tchina\nUK\tuk\nmars\tmars\n")
    rows = [{"text_a": f"usa embassy china. uk treaties usa {i}.", "text_b": "china treaties uk.",
             "text_random": "uk embassy usa."} for i in range(16)]
    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in ("text_a", "text_b", "text_random")}
    config = PretrainingTransformConfig(vocab, max_sequence_length=24, max_predictions_per_seq=4,
                                        alias_file=str(tmp_path / "aliases.tsv"), knowledge_dir=str(knowledge))
    data, _ = run_transform(tmp_path, lambda inputs: pretraining_preprocessing_fn(inputs, config), rows, spec)
    assert len(data) == 16
    for row in data:
        entity_ids = np.asarray(row["entity_ids"])
        assert entity_ids.shape == (24,) and (entity_ids >= 0).sum() >= 3
        hidden = np.asarray(row["masked_positions"])[np.asarray(row["masked_weights"]) > 0]
        assert (entity_ids[hidden] == -1).all()
        assert row["mlm_num_masked"] == np.sum(row["masked_weights"])


def test_classification_fn_keeps_label_zero(tmp_path):
    vocab = write_vocabulary(list(SPECIAL_TOKENS) + ["hello", "world"], str(tmp_path / "vocab.txt"))
    spec = {"text": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}
    rows = [{"text": "hello world", "label": 0}, {"text": "", "label": 1}]
    config = TextTransformConfig(vocab, max_sequence_length=8)
    data, _ = run_transform(tmp_path, lambda inputs: classification_preprocessing_fn(inputs, config), rows, spec)
    assert [int(r["label"]) for r in data] == [0, 1]
    assert list(data[0]["token_ids"][:4]) == [2, 5, 6, 3] and int(np.sum(data[1]["padding_mask"])) == 2


def test_every_preprocessing_fn_names_the_features_its_examples_lack(tmp_path):
    """A schema without the kind's columns fails at once with their names, before any tokenizer is built."""
    from rw_tf.data import transform_fns as fns

    vocab = str(tmp_path / "vocab.txt")
    text = {"text_a": tf.constant([b"a"])}
    cases = [(fns.pretraining_preprocessing_fn, fns.PretrainingTransformConfig(vocab), "pretraining",
              ["text_b", "text_random"]),
             (fns.classification_preprocessing_fn, fns.TextTransformConfig(vocab), "classification", ["text"]),
             (fns.pair_preprocessing_fn, fns.PairTransformConfig(vocab), "sentence-embedding",
              ["query", "item", "negative"]),
             (fns.image_text_preprocessing_fn, fns.ImageTextTransformConfig(vocab), "image-text",
              ["image", "caption", "negative_caption", "label"]),
             (fns.qa_preprocessing_fn, fns.QATransformConfig(vocab), "question-answering",
              ["question", "context", "answer", "answer_start"]),
             (fns.interaction_preprocessing_fn, fns.InteractionTransformConfig(str(tmp_path / "items.txt")),
              "recommendation", ["history", "item"])]
    for fn, config, what, missing in cases:
        try:
            fn(text, config)
        except KeyError as err:
            assert str(err) == repr(f"{what} examples are missing features {missing}"), (fn.__name__, str(err))
        else:
            raise AssertionError(f"{fn.__name__} accepted examples without {missing}")
