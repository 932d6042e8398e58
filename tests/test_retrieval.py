"""Retrieval: in-batch InfoNCE, ranking metrics, dual-encoder fine-tuning of MiniLM, exported index."""
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.finetuning.retrieval import RetrievalConfig, RetrievalExport, finetune_retrieval, ranking_metrics
from rw_tf.losses import InBatchInfoNCE


def test_info_nce():
    perfect = np.eye(4, dtype="float32")
    uniform = np.zeros((4, 4), "float32")
    loss = InBatchInfoNCE(temperature=0.05)
    assert float(loss(np.zeros(4), perfect)) < 1e-6
    assert float(loss(np.zeros(4), uniform)) == pytest.approx(np.log(4), rel=1e-5)
    assert float(InBatchInfoNCE(0.05, symmetric=True)(np.zeros(4), uniform)) == pytest.approx(np.log(4), rel=1e-5)


def test_ranking_metrics():
    queries = np.eye(3)
    items = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])     # query 1 and 2 find the other's item
    m = ranking_metrics(queries, items, ks=(1, 2))
    assert m["recall@1"] == pytest.approx(1 / 3) and m["recall@2"] == pytest.approx(1.0)
    assert m["ndcg@10"] == pytest.approx((1 + 2 / np.log2(3)) / 3)


def test_retrieval_finetune_and_export(tmp_path):
    config = RetrievalConfig(output_dir=str(tmp_path), max_pairs=800, max_sequence_length=48, batch_size=16,
                             steps=20, top_k=5)
    result = finetune_retrieval(config, verbose=0)
    print("retrieval before", result["before"], "after", result["after"])
    assert result["before"]["recall@10"] > 0.3                      # MiniLM already retrieves
    assert result["after"]["recall@10"] >= result["before"]["recall@10"] - 0.02
    assert result["loss"][0] > 0
    loaded = tf.saved_model.load(result["export_dir"])
    out = loaded.signatures["retrieve"](text=tf.constant(["Return the number of items in a container."]))
    assert out["items"].shape == (1, 5) and (np.diff(out["scores"].numpy()[0]) <= 1e-6).all()
    with pytest.raises(ValueError, match="empty item index"):
        RetrievalExport(None, None, [], np.zeros((0, 4)), 16, 5)
