"""The layers, encoder, heads and losses use keras.ops only, so the model trains under JAX too.

Runs in a subprocess because Keras picks its backend once per process.
"""
import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, numpy as np, keras
assert keras.backend.backend() == "jax"
from rw_tf.models import PretrainingModel
from rw_tf.networks import TransformerEncoder
rng = np.random.default_rng(0)
n, L, P, V = 16, 12, 3, 60
x = {"token_ids": rng.integers(5, V, (n, L)).astype("int32"),
     "segment_ids": np.repeat([[0]*6 + [1]*6], n, 0).astype("int32"),
     "padding_mask": np.ones((n, L), "int32"), "masked_positions": rng.integers(1, L, (n, P)).astype("int32")}
y = {"mlm": rng.integers(5, V, (n, P)).astype("int32"), "nsp": rng.integers(0, 2, (n, 1)).astype("float32"),
     "sop": rng.integers(0, 2, (n, 1)).astype("float32")}
w = {"mlm": np.ones((n, P), "float32"), "nsp": np.ones((n,), "float32"), "sop": np.ones((n,), "float32")}
model = PretrainingModel(TransformerEncoder.from_preset("tiny", vocab_size=V))
model.compile(optimizer=keras.optimizers.Adam(3e-3))
h = model.fit(x, y, sample_weight=w, epochs=15, batch_size=8, verbose=0).history
# The trainers are TensorFlow's (tf.distribute, tf.data, SavedModel): refused by name, not an AttributeError.
import contextlib, io, sys, tempfile
from rw_tf.cli.main import main
out, err = tempfile.mkdtemp(), io.StringIO()
with contextlib.redirect_stderr(err):
    codes = [main(["pretrain", "--output-dir", out + "/p", "--preset", "tiny", "--max-documents", "20"]),
             main(["kg", "train", "--dataset", "nations", "--output-dir", out + "/kg", "--epochs", "1"])]
print(json.dumps({"first": h["mlm_loss"][0], "last": h["mlm_loss"][-1], "keys": sorted(h), "codes": codes,
                  "errors": err.getvalue()}))
"""


def test_pretraining_model_trains_under_jax_backend():
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["last"] < result["first"] - 0.5   # memorizes the tiny batch
    assert {"mlm_loss", "nsp_loss", "sop_loss"} <= set(result["keys"])
    assert result["codes"] == [2, 2], result["errors"]
    assert result["errors"].count("training runs with tf.distribute, but Keras runs on jax (KERAS_BACKEND='jax')") == 2
    # A backend Keras cannot load: the import says which variable to change.
    proc = subprocess.run([sys.executable, "-c", "import rw_tf"], env=dict(os.environ, KERAS_BACKEND="torch"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        "ImportError: Keras cannot load the backend that KERAS_BACKEND='torch' names (No module named 'torch'); "
        "rw_tf trains, exports and serves with TensorFlow's: unset KERAS_BACKEND"), proc.stderr[-2000:]


IMAGE_TEXT_SCRIPT = r"""
import json, numpy as np, keras
assert keras.backend.backend() == "jax"
from rw_tf.models.image_text import ImageTextMatcher, ImageTextModel
from rw_tf.networks import TransformerEncoder
from rw_tf.networks.image_encoder import ViTImageEncoder
rng = np.random.default_rng(0)
n, L, V = 16, 6, 40
text = lambda: {"token_ids": rng.integers(5, V, (n, L)).astype("int32"), "segment_ids": np.zeros((n, L), "int32"),
                "padding_mask": np.ones((n, L), "int32")}
x = {"image": rng.normal(size=(n, 16, 16, 3)).astype("float32"), "text": text(), "negative_text": text()}
ids = np.stack([np.arange(n)] * 2, 1).astype("int32")
y = {"alignment": ids, "match": np.tile([[1.0, 0.0]], (n, 1)).astype("float32")}
backbone = ImageTextModel(ViTImageEncoder.from_preset("tiny", image_size=16),
                          TransformerEncoder.from_preset("tiny", vocab_size=V), projection_dim=16, fusion_size=16,
                          fusion_heads=2)
model = ImageTextMatcher(backbone, fusion="cross_attention", head_size=16)
model.compile(optimizer=keras.optimizers.Adam(3e-3))
h = model.fit(x, y, epochs=15, batch_size=8, verbose=0).history
print(json.dumps({"first": h["loss"][0], "last": h["loss"][-1], "keys": sorted(h)}))
"""


def test_image_text_matcher_trains_under_jax_backend():
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", IMAGE_TEXT_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["last"] < result["first"] - 0.5   # memorizes the tiny set
    assert {"alignment_loss", "match_loss", "match_accuracy"} <= set(result["keys"])
