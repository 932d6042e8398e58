"""The pretraining pipeline in knowledge mode on the Nations domain demo (slow: a second full run)."""
import json
import os
import subprocess
import sys

import pytest
from conftest import TINY_PIPELINE

from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.local_runner import run_all


@pytest.mark.slow
def test_knowledge_mode_pipeline(tmp_path):
    config = PipelineConfig(root=str(tmp_path), corpus="nations", vocab_size=400, target_words=6,
                            max_sequence_length=32, max_predictions_per_seq=5,
                            **{k: v for k, v in TINY_PIPELINE.items() if k not in ("vocab_size", "corpus")})
    summary = run_all(config, ["pretrain"])["pretrain"]
    assert summary["blessed"] and summary["pushed"], summary
    script = ("import sys, json, tensorflow as tf, tensorflow_text\n"
              "m = tf.saved_model.load(sys.argv[1])\n"
              "e = m.signatures['encode_text'](text=tf.constant(['usa embassy china.']))\n"
              "print(json.dumps(list(e['mean_embedding'].shape)))\n")
    proc = subprocess.run([sys.executable, "-c", script, summary["pushed_destination"]], capture_output=True,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [1, 64]
    assert os.path.exists(os.path.join(config.knowledge_dir, "transe.keras"))
