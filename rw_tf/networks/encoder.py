"""The Transformer encoder backbone: embeddings, N encoder blocks, and a tanh pooler on [CLS]."""
from __future__ import annotations

from typing import Any, Dict, Optional

import keras

from rw_tf.config import EncoderConfig, checks_number_arguments
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.embeddings import TransformerEmbeddings
from rw_tf.layers.shape_checks import check_shapes
from rw_tf.layers.transformer_block import TransformerEncoderBlock

ENCODER_INPUTS = ("token_ids", "segment_ids", "padding_mask")


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class TransformerEncoder(keras.Model):
    """BERT-style encoder (KerasHub calls it a backbone): ``TransformerEmbeddings``, ``num_layers``
    ``TransformerEncoderBlock``s and a tanh pooler on [CLS]. ``from_preset(name, **overrides)`` builds
    a named size (``rw_tf.config.ENCODER_PRESETS``: "tiny", "small", "base" = BERT-base).

    Args:
        vocab_size: number of token ids.
        hidden_size: size of the token states.
        num_layers: encoder blocks.
        num_heads: attention heads (``hidden_size`` must divide by it).
        intermediate_size: inner size of the feed-forward layers.
        max_sequence_length: number of learned positions (longest input).
        type_vocab_size: number of segment ids.
        dropout: rate in the embeddings and after attention and feed-forward.
        attention_dropout: rate on the attention probabilities.
        layer_norm_epsilon: epsilon of the LayerNorms.
        initializer_range: standard deviation of the truncated-normal initializers.
    Shapes:
        Inputs: a dict with ``token_ids`` [batch, seq] int, ``segment_ids`` [batch, seq] int and
        ``padding_mask`` [batch, seq] (1 = real token). Outputs: a dict with ``sequence_output``
        [batch, seq, hidden] and ``pooled_output`` [batch, hidden] (tanh(W h_[CLS] + b)).

    Example:
        >>> enc = TransformerEncoder.from_preset("tiny", vocab_size=100)
        >>> ids = keras.ops.ones((2, 8), dtype="int32")
        >>> out = enc({"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids})
        >>> tuple(out["pooled_output"].shape)
        (2, 64)
    """

    # The [batch, sequence] inputs `call` reads (a subclass may add some): their shapes must agree.
    input_names = ENCODER_INPUTS

    def __init__(self, vocab_size: int, hidden_size: int = 768, num_layers: int = 12, num_heads: int = 12,
                 intermediate_size: int = 3072, max_sequence_length: int = 512, type_vocab_size: int = 2,
                 dropout: float = 0.1, attention_dropout: float = 0.1, layer_norm_epsilon: float = 1e-12,
                 initializer_range: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Validates sizes once, with the config's error messages.
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            self.config = EncoderConfig(vocab_size, hidden_size, num_layers, num_heads, intermediate_size,
                                        max_sequence_length, type_vocab_size, dropout, attention_dropout,
                                        layer_norm_epsilon, initializer_range)
            self.embeddings = TransformerEmbeddings(vocab_size, hidden_size, max_sequence_length,
                                                    type_vocab_size, dropout, layer_norm_epsilon,
                                                    initializer_range, name="embeddings")
            self.blocks = [
                TransformerEncoderBlock(hidden_size, num_heads, intermediate_size, dropout, attention_dropout,
                                        layer_norm_epsilon, initializer_range, name=f"block_{i}")
                for i in range(num_layers)
            ]
            self.pooler = keras.layers.Dense(
                hidden_size, activation="tanh", name="pooler",
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "TransformerEncoder":
        """Builds an encoder from an ``EncoderConfig`` preset ("tiny", "small", "base")."""
        return cls.from_encoder_config(EncoderConfig.preset(name, **overrides))

    @classmethod
    def from_encoder_config(cls, config: EncoderConfig, **kwargs: Any) -> "TransformerEncoder":
        return cls(**config.to_dict(), **kwargs)

    @property
    def token_embedding(self) -> keras.layers.Embedding:
        return self.embeddings.token_embedding

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape["token_ids"]) if isinstance(input_shape, dict) else tuple(input_shape)
        self.embeddings.build(shape)
        hidden_shape = shape + (self.config.hidden_size,)
        for block in self.blocks:
            block.build(hidden_shape)
        self.pooler.build((shape[0], self.config.hidden_size))
        self.built = True

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Dict[str, Any]:
        missing = [k for k in ENCODER_INPUTS if k not in inputs]
        if missing:
            raise KeyError(f"encoder inputs are missing {missing}; expected keys {list(ENCODER_INPUTS)}")
        self._check_shapes({k: tuple(inputs[k].shape) for k in self.input_names if k in inputs})
        padding_mask = inputs["padding_mask"]
        context = self._knowledge_context(inputs)
        x = self.embeddings(inputs["token_ids"], inputs["segment_ids"], training=training)
        for i, block in enumerate(self.blocks):
            x = self._after_block(i, block(x, padding_mask=padding_mask, training=training), context)
        pooled = self.pooler(x[:, 0, :])
        return {"sequence_output": x, "pooled_output": pooled}

    def _check_shapes(self, shapes: Dict[str, tuple]) -> None:
        """Static checks with messages that say what is wrong (the kernels would fail later, in an
        embedding lookup or a broadcast, naming neither the input nor the limit)."""
        check_shapes(type(self).__name__, **{name: (shape, ("batch", "sequence")) for name, shape in shapes.items()})
        if any(shape[1] == 0 for shape in shapes.values()):
            raise ValueError(f"encoder inputs have no positions: {shapes} (a sequence holds at least [CLS])")
        longest = max((shape[1] for shape in shapes.values() if shape[1] is not None), default=0)
        if longest > self.config.max_sequence_length:
            raise ValueError(f"sequence length {longest} is longer than the encoder's max_sequence_length "
                             f"{self.config.max_sequence_length}: truncate the inputs (the tokenizer's sequence "
                             "length) or use an encoder with more positions")

    # Hooks for subclasses that inject extra information between blocks (see KnowledgeEnhancedEncoder).
    def _knowledge_context(self, inputs: Dict[str, Any]) -> Any:
        return None

    def _after_block(self, index: int, hidden_states: Any, context: Any) -> Any:
        return hidden_states

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(self.config.to_dict())
        return config
