"""Model files a user points rw-tf at (start points, teachers, exports, knowledge-graph models,
Hugging Face checkpoints) that are truncated, overwritten or hand-edited: every case is a user
error (one line, exit 2 on the command line) that names the broken file, never a library
exception that the CLI reports as an unexpected failure."""
import io
import json
import os
import shutil
import struct
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import rw_tf
from rw_tf.checkpoints import minilm_checkpoint_dir, pretrained_encoder, pretrained_tokenizer
from rw_tf.cli.main import USER_ERRORS, main
from rw_tf.errors import CorruptFileError
from rw_tf.knowledge.training import load_model_dir
from rw_tf.tokenization import SPECIAL_TOKENS, WordPieceTokenizer, read_vocabulary

WORDS = ["the", "cat", "sat", "on", "mat", "##s", "a", "dog"]


def write_vocab(path, tokens=None, ending="\n"):
    tokens = list(SPECIAL_TOKENS) + WORDS if tokens is None else tokens
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(ending.join(tokens) + ending)
    return str(path)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """The parts of an rw-tf export that a start point needs: encoder.keras, vocab and tokenizer settings."""
    root = tmp_path_factory.mktemp("export")
    os.makedirs(root / "assets.extra")
    os.makedirs(root / "assets")
    write_vocab(root / "assets" / "vocab.txt")
    encoder = rw_tf.TransformerEncoder.from_preset("tiny", vocab_size=len(SPECIAL_TOKENS) + len(WORDS))
    encoder.build({"token_ids": (None, None)})
    encoder.save(str(root / "assets.extra" / "encoder.keras"))
    (root / "assets.extra" / "tokenizer.json").write_text(json.dumps({"lower_case": True, "max_chars_per_word": 100}))
    return root


def rewrite_archive(path, name, change, compression=zipfile.ZIP_STORED):
    """The .keras archive at ``path`` with member ``name`` replaced by ``change(bytes)``."""
    with zipfile.ZipFile(path) as archive:
        members = {m: archive.read(m) for m in archive.namelist()}
    members[name] = change(members[name])
    with zipfile.ZipFile(path, "w", compression) as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def never_written_weight(weights):
    """The weights file with its first weight replaced by one of 1 GiB whose chunks were never
    written: HDF5 fills them on read, so a 10 KB file would become 1 GiB in memory."""
    buffer = io.BytesIO(weights)
    with h5py.File(buffer, "a") as f:
        names = []
        f.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        del f[names[0]]
        f.create_dataset(names[0], shape=(1 << 28,), dtype="float32", chunks=(1 << 20,))
    return buffer.getvalue()


def declare_member_size(path, name, change):
    """Rewrites the sizes the archive's directory and local header declare for ``name``."""
    data = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo(name)
    size = change(member.file_size)
    struct.pack_into("<II", data, member.header_offset + 18, size, size)
    entry = data.index(b"PK\x01\x02")   # the central directory's entries: sizes at 20, name at 46
    while data[entry + 46:entry + 46 + len(name)] != name.encode():
        entry = data.index(b"PK\x01\x02", entry + 4)
    struct.pack_into("<II", data, entry + 20, size, size)
    open(path, "wb").write(bytes(data))


def truncate(path, keep):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:keep(len(data))])


def tiny_transe(entities, relations):
    model = rw_tf.TransE(entities, relations, embedding_dim=4)
    model(np.zeros((1, 3), np.int32))
    return model


ENCODER = "assets.extra/encoder.keras"
SETTINGS = "assets.extra/tokenizer.json"
VOCAB = "assets/vocab.txt"
# case -> (file it breaks, how, words the error must contain besides the file's path)
EXPORT_CASES = {
    "keras_truncated": (ENCODER, lambda p: truncate(p, lambda n: n // 2), "not a .keras model file"),
    "keras_random_bytes": (ENCODER, lambda p: open(p, "wb").write(os.urandom(3000)), "not a .keras model file"),
    "keras_config_not_json": (ENCODER, lambda p: rewrite_archive(p, "config.json", lambda b: b"{not json"),
                              "cannot be loaded as a Keras model"),
    "keras_weights_truncated": (ENCODER, lambda p: rewrite_archive(p, "model.weights.h5", lambda b: b[:len(b) // 3]),
                                "cannot be loaded as a Keras model"),
    # Decompression bombs: a few KB on disk that Keras would expand in memory (its own guard starts at 4 GiB).
    "keras_config_bomb": (ENCODER, lambda p: rewrite_archive(p, "config.json", lambda b: b" " * (100 << 20) + b,
                                                             zipfile.ZIP_DEFLATED),
                          "member config.json declares 104,"),
    "keras_weights_bomb": (ENCODER, lambda p: rewrite_archive(p, "model.weights.h5", lambda b: b + bytes(64 << 20),
                                                              zipfile.ZIP_DEFLATED),
                           "member model.weights.h5 declares 67,"),
    "keras_weight_never_written": (ENCODER, lambda p: rewrite_archive(p, "model.weights.h5", never_written_weight),
                                   "of shape (268435456,) declares 1,073,741,824 bytes and stores 0"),
    "keras_declared_size_too_small": (ENCODER, lambda p: declare_member_size(p, "model.weights.h5", lambda n: n - 999),
                                      "cannot be loaded as a Keras model"),
    "keras_declared_size_too_large": (ENCODER, lambda p: declare_member_size(p, "config.json", lambda n: n + 999),
                                      "cannot be loaded as a Keras model"),
    "keras_holds_another_model": (ENCODER, lambda p: tiny_transe(3, 1).save(p),
                                  "holds a TransE, not a TransformerEncoder"),
    "settings_not_an_object": (SETTINGS, lambda p: open(p, "w").write("[true]"), "must hold a JSON object"),
    "settings_not_json": (SETTINGS, lambda p: open(p, "w").write("lower_case: yes"), "is not a UTF-8 JSON file"),
    "settings_unknown_key": (SETTINGS, lambda p: open(p, "w").write('{"lower_casee": true}'),
                             "unknown tokenizer settings ['lower_casee']"),
    "settings_wrong_type": (SETTINGS, lambda p: open(p, "w").write('{"lower_case": "yes"}'),
                            "lower_case must be bool, got 'yes'"),
    "settings_bad_range": (SETTINGS, lambda p: open(p, "w").write('{"max_chars_per_word": 0}'),
                           "max_chars_per_word must be positive"),
    "settings_bad_form": (SETTINGS, lambda p: open(p, "w").write('{"normalization_form": "NFX"}'),
                          "normalization_form must be one of"),
    "vocab_repeated_token": (VOCAB, lambda p: write_vocab(p, list(SPECIAL_TOKENS) + WORDS + ["cat"]),
                             "line 14 repeats the token 'cat' of line 7"),
    "vocab_empty_line": (VOCAB, lambda p: write_vocab(p, list(SPECIAL_TOKENS) + ["the", ""] + WORDS[1:]),
                         "line 7 is empty"),
    "vocab_windows_line_ends": (VOCAB, lambda p: write_vocab(p, ending="\r\n"), "line 1 ends with a carriage return"),
    "vocab_not_utf8": (VOCAB, lambda p: open(p, "ab").write(b"caf\xe9\n"), "line 14 is not UTF-8 text (byte 0xe9"),
    "vocab_empty": (VOCAB, lambda p: open(p, "w").close(), "vocabulary file is empty"),
    # TensorFlow's lookup table would read the mark as part of "[PAD]": "lacks special tokens ['[PAD]']".
    "vocab_byte_order_mark": (VOCAB, lambda p: open(p, "r+b").write(b"\xef\xbb\xbf" + open(p, "rb").read()),
                              "starts with a UTF-8 byte order mark"),
    # Pretraining's masking draws its random tokens from the others: "indices[0,0] = 0 is not in [0, 0)".
    "vocab_only_special_tokens": (VOCAB, lambda p: write_vocab(p, list(SPECIAL_TOKENS)),
                                  "holds only the special tokens"),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_broken_start_points_are_user_errors_naming_the_file(case, export_dir, tmp_path):
    broken = tmp_path / "start"
    shutil.copytree(export_dir, broken)
    file, damage, words = EXPORT_CASES[case]
    damage(str(broken / file))
    with pytest.raises(USER_ERRORS) as raised:
        tokenizer = pretrained_tokenizer(str(broken))
        pretrained_encoder(str(broken), tokenizer)
    message = str(raised.value)
    assert str(broken / file) in message and words in message, message


def test_the_intact_start_point_loads(export_dir):
    tokenizer = pretrained_tokenizer(str(export_dir))
    encoder = pretrained_encoder(str(export_dir), tokenizer)
    assert (tokenizer.vocab_size, encoder.config.vocab_size, tokenizer.lower_case) == (13, 13, True)


def test_vocabulary_files_round_trip_and_tokenizer_arguments_are_checked(tmp_path):
    path = str(tmp_path / "v.txt")
    write_vocab(path)
    assert read_vocabulary(path) == list(SPECIAL_TOKENS) + WORDS
    with open(path, "w", encoding="utf-8") as f:  # no final line end: the same vocabulary
        f.write("\n".join(list(SPECIAL_TOKENS) + WORDS))
    assert read_vocabulary(path) == list(SPECIAL_TOKENS) + WORDS
    assert WordPieceTokenizer(path).tokenize(["the cats"]).to_list() == [[5, 6, 10]]
    for kwargs, words in (({"lower_case": "no"}, "lower_case must be bool"),
                          ({"split_cjk": 1}, "split_cjk must be bool"),
                          ({"max_chars_per_word": 2.5}, "max_chars_per_word must be int"),
                          ({"normalization_form": "nfc"}, "normalization_form must be one of")):
        with pytest.raises(ValueError, match=words):
            WordPieceTokenizer(path, **kwargs)


@pytest.fixture(scope="module")
def minilm_header():
    path = os.path.join(minilm_checkpoint_dir(), "model.safetensors")
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        body = f.read(4_000_000)  # enough for the first tensors; the file is 90 MB
    return header, body


def safetensors_bytes(header, body):
    data = json.dumps(header).encode()
    return struct.pack("<Q", len(data)) + data + body


def broken_config(change):
    config = json.load(open(os.path.join(minilm_checkpoint_dir(), "config.json")))
    change(config)
    return json.dumps(config)


def first_tensor(header):
    return next(k for k in header if k != "__metadata__")


HF_CASES = {
    "config_not_json": ("config.json", lambda h, b: "{bad", "is not a UTF-8 JSON file"),
    "config_lacks_sizes": ("config.json", lambda h, b: broken_config(lambda c: c.pop("hidden_size")),
                           "lacks ['hidden_size']"),
    "config_wrong_type": ("config.json", lambda h, b: broken_config(lambda c: c.update(num_attention_heads="12")),
                          "num_attention_heads must be int, got '12'"),
    "config_impossible_sizes": ("config.json", lambda h, b: broken_config(lambda c: c.update(num_attention_heads=7)),
                                "hidden_size (384) must be divisible by num_heads (7)"),
    "tokenizer_config_wrong_type": ("tokenizer_config.json", lambda h, b: '{"do_lower_case": "no"}',
                                    "do_lower_case must be true or false"),
    # declared sizes that do not match the content: safetensors' header against the bytes
    "weights_truncated": ("model.safetensors", lambda h, b: safetensors_bytes(h, b), "not a readable safetensors"),
    "weights_header_length_huge": ("model.safetensors", lambda h, b: struct.pack("<Q", 2 ** 40) + b[:1000],
                                   "header too large"),
    "weights_offsets_past_the_end": ("model.safetensors", lambda h, b: safetensors_bytes(
        {**h, first_tensor(h): {**h[first_tensor(h)], "data_offsets": [0, 10 ** 12]}}, b),
        "not a readable safetensors"),
}


@pytest.mark.parametrize("case", sorted(HF_CASES))
def test_broken_hugging_face_checkpoints_are_user_errors_naming_the_file(case, minilm_header, tmp_path):
    source = minilm_checkpoint_dir()
    for name in ("config.json", "vocab.txt", "model.safetensors", "tokenizer_config.json"):
        os.symlink(os.path.join(source, name), tmp_path / name)
    file, content, words = HF_CASES[case]
    os.remove(tmp_path / file)
    data = content(*minilm_header)
    (tmp_path / file).write_bytes(data if isinstance(data, bytes) else data.encode())
    with pytest.raises(USER_ERRORS) as raised:
        pretrained_encoder(str(tmp_path), pretrained_tokenizer(str(tmp_path)))
    message = str(raised.value)
    assert str(tmp_path / file) in message and words in message, message


@pytest.fixture(scope="module")
def kg_model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("kg")
    tiny_transe(3, 2).save(str(root / "transe.keras"))
    (root / "entities.json").write_text(json.dumps({"a": 0, "b": 1, "c": 2}))
    (root / "relations.json").write_text(json.dumps({"r": 0, "s": 1}))
    return root


@pytest.mark.parametrize("file,content,words", [
    ("entities.json", '{"a": 0, "b": "1", "c": 2}', "entity ids must be integers, got 'b': '1'"),
    ("entities.json", '{"a": 0, "b": 1, "c": 7}', "the 3 entity ids must be 0 .. 2, each once"),
    ("relations.json", '["r", "s"]', "must hold a JSON object"),
    ("relations.json", '{"r": 0}', "embeds 3 entities and 2 relations, but"),
    ("transe.keras", "not a zip", "not a .keras model file"),
])
def test_broken_knowledge_graph_models_are_user_errors_naming_the_file(file, content, words, kg_model_dir, tmp_path):
    model, entities, relations = load_model_dir(str(kg_model_dir))
    assert (model.num_entities, len(entities), len(relations)) == (3, 3, 2)
    broken = tmp_path / "kg"
    shutil.copytree(kg_model_dir, broken)
    (broken / file).write_text(content)
    with pytest.raises(CorruptFileError) as raised:
        load_model_dir(str(broken))
    assert str(broken) in str(raised.value) and words in str(raised.value), str(raised.value)


class Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed_text(self, text):
        return {"embedding": tf.stack([tf.cast(tf.strings.length(text), tf.float32)] * 2, axis=1)}


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    module = Doubler()
    module.weight = tf.Variable(np.arange(50_000, dtype=np.float32))  # a variables file worth truncating
    tf.saved_model.save(module, str(root / "1"), signatures={"embed_text": module.embed_text})
    return root


@pytest.mark.parametrize("file,keep", [("saved_model.pb", 0.5), ("variables/variables.data-00000-of-00001", 0.3),
                                       ("variables/variables.index", 0.5)])
def test_cli_refuses_a_broken_saved_model_with_one_line(file, keep, saved_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RW_TF_LOG_DIR", str(tmp_path / "logs"))
    assert main(["embed", "--model", str(saved_model_dir), "--text", "four"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["embedding"] == [4.0, 4.0]
    broken = tmp_path / "model"
    shutil.copytree(saved_model_dir, broken)
    truncate(str(broken / "1" / file), lambda n: int(n * keep))
    assert main(["embed", "--model", str(broken), "--text", "four"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be loaded" in err[0] and str(broken / "1") in err[0], err
    assert not os.path.exists(tmp_path / "logs") or not os.listdir(tmp_path / "logs")


def test_cli_refuses_a_broken_start_point_before_training(export_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RW_TF_LOG_DIR", str(tmp_path / "logs"))
    broken = tmp_path / "start"
    shutil.copytree(export_dir, broken)
    rewrite_archive(str(broken / ENCODER), "model.weights.h5", lambda b: b[:len(b) // 3])
    code = main(["finetune", "--task", "classification", "--init-from", str(broken), "--output-dir",
                 str(tmp_path / "out"), "--steps-per-epoch", "1", "--max-examples-per-class", "8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"{broken / ENCODER} cannot be loaded as a Keras model (OSError: Unable to" in err[0]
    assert isinstance(keras.saving.load_model(str(export_dir / ENCODER)), rw_tf.TransformerEncoder)


def small_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize("damage,words", [
    (lambda d: (d / "state.json").write_text("{"), "state.json is not a UTF-8 JSON file"),
    (lambda d: (d / "state.json").write_text('{"global_step": "7", "weights": "w"}'), "is not a backup state"),
    (lambda d: truncate(str(next(d.glob("*.weights.h5"))), lambda n: n // 2), "cannot be restored (OSError"),
    (lambda d: truncate(str(next(d.glob("*.rng.npz"))), lambda n: n // 2), "cannot be restored ("),
    (lambda d: next(d.glob("*.weights.h5")).unlink(), "cannot be restored ("),
])
def test_a_broken_training_backup_is_a_user_error_that_says_how_to_start_afresh(damage, words, tmp_path):
    from rw_tf.training.backup import TrainingBackup

    model = small_model()
    model.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, verbose=0)
    backup = TrainingBackup(str(tmp_path / "backup"))
    backup.set_model(model)
    backup.global_step = 7
    backup.save()
    restored = small_model()
    assert TrainingBackup(str(tmp_path / "backup")).restore(restored) == 7
    np.testing.assert_array_equal(restored.get_layer("dense").kernel.numpy(), model.get_layer("dense").kernel.numpy())
    damage(tmp_path / "backup")
    with pytest.raises(CorruptFileError) as raised:
        TrainingBackup(str(tmp_path / "backup")).restore(small_model())
    message = str(raised.value)
    assert words in message and f"delete {tmp_path / 'backup'} to start the run afresh" in message, message
