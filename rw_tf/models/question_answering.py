"""Extractive question answering task model: encoder + ``SpanHead`` over question+context windows."""
from __future__ import annotations

from typing import Any, Dict, Optional

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.heads.span import SpanHead
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.models.task_model import TaskModelMixin
from rw_tf.networks.encoder import TransformerEncoder


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class SpanQuestionAnswerer(TaskModelMixin, keras.Model):
    """Outputs ``{"start": [batch, L], "end": [batch, L]}`` logits over the window's positions.

    Targets are sequence positions (``rw_tf.data.qa_windows.span_labels``; 0 = [CLS] for a window
    without the answer). ``compile()`` with no loss uses softmax cross-entropy on both ends with
    weight 0.5 each (BERT's SQuAD loss) and start/end accuracy. Span decoding lives in
    ``rw_tf.applications.question_answering``.

    Args:
        encoder: a ``TransformerEncoder`` (its [CLS] pooler is not used and is frozen).
    Shapes:
        Inputs: encoder inputs [batch, L] (question and context window, ``rw_tf.data.qa_windows``).
        Outputs: ``{"start": [batch, L], "end": [batch, L]}`` float32 logits; padding gets -1e4.

    Example:
        >>> qa = SpanQuestionAnswerer(TransformerEncoder.from_preset("tiny", vocab_size=100))
        >>> ids = keras.ops.ones((2, 8), dtype="int32")
        >>> out = qa({"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids})
        >>> tuple(out["start"].shape), tuple(out["end"].shape)
        ((2, 8), (2, 8))
        >>> qa.compile(optimizer="adam")      # targets {"start": [batch], "end": [batch]} positions
    """

    nested_layers = ("encoder",)

    def __init__(self, encoder: TransformerEncoder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            self.encoder = encoder
            encoder.pooler.trainable = False  # span logits read token states, never the [CLS] pooler
            self.span_head = SpanHead(encoder.config.initializer_range, name="span_head")

    def build(self, input_shape: Dict[str, Any]) -> None:
        if not self.encoder.built:
            self.encoder.build(input_shape)
        self.span_head.build((None, None, self.encoder.config.hidden_size))
        self.built = True

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Dict[str, Any]:
        sequence_output = self.encoder(inputs, training=training)["sequence_output"]
        start, end = self.span_head(sequence_output, inputs["padding_mask"])
        return {"start": ops.cast(start, "float32"), "end": ops.cast(end, "float32")}  # float32 under mixed precision

    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Any = None, **kwargs: Any) -> None:
        if loss is None:
            loss = {k: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for k in ("start", "end")}
            kwargs.setdefault("loss_weights", {"start": 0.5, "end": 0.5})
        if metrics is None:
            metrics = {k: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")] for k in ("start", "end")}
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
