"""Export of a dual encoder with its item index (``DualEncoder``).

``retrieve`` (text -> top-k ``item_ids``, ``items``, ``scores`` over the item vectors stored in
the SavedModel) and ``encode_text`` (text -> query ``embedding``, L2-normalised, for an external
index). An empty item index is an error.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import tensorflow as tf

from rw_tf.config import checks_number_arguments
from rw_tf.export.base import TEXT_SPEC, ExportModule, Signature


@checks_number_arguments()
class RetrievalExport(ExportModule):
    """Serving module of a ``DualEncoder``: ``item_texts`` and their ``item_vectors`` are the index."""

    raw_signature = "retrieve"

    def __init__(self, model, tokenizer, item_texts: Sequence[str], item_vectors: np.ndarray,
                 max_sequence_length: int, top_k: int) -> None:
        if len(item_texts) == 0:
            raise ValueError("cannot export retrieval with an empty item index")
        if len(item_texts) != len(item_vectors):
            raise ValueError(f"{len(item_texts)} item texts but {len(item_vectors)} item vectors")
        super().__init__(model, tokenizer, max_sequence_length)
        self.item_texts = tf.constant(list(item_texts))
        self.item_vectors = tf.constant(np.asarray(item_vectors, np.float32))
        self.top_k = min(int(top_k), len(item_texts))

    def signature_fns(self) -> Dict[str, Signature]:
        return {"retrieve": (self.retrieve, [TEXT_SPEC]), "encode_text": (self.encode_text, [TEXT_SPEC])}

    def encode_text(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {"embedding": tf.cast(self.model.embed(self.text_inputs(text), "query", training=False), tf.float32)}

    def retrieve(self, text: tf.Tensor) -> Dict[str, tf.Tensor]:
        query = self.encode_text(text)["embedding"]
        scores, ids = tf.math.top_k(tf.matmul(query, self.item_vectors, transpose_b=True), k=self.top_k)
        return {"item_ids": ids, "items": tf.gather(self.item_texts, ids), "scores": scores}

    def keras_models(self):
        return {"model.keras": self.model, "encoder.keras": self.model.query_encoder}
