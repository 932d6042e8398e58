"""A Transformer encoder with knowledge injection after chosen blocks.

Inputs: the encoder inputs plus ``entity_ids`` [batch, seq] (-1 = no entity; from
``EntityLinker``). After each block listed in ``knowledge_layers`` the token states of linked
tokens are fused with their entity's embedding (TransE's, optionally frozen) by
``GatedKnowledgeFusion`` (``fusion="gated"``) or ``AdditiveKnowledgeFusion`` (``"additive"``).
The class docstring has the arguments, shapes and an example.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import keras
import numpy as np
from keras import ops

from rw_tf.config import check_choice, checks_number_arguments
from rw_tf.layers.config_fields import ConfigFields
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.id_checks import checked_ids
from rw_tf.layers.knowledge_fusion import AdditiveKnowledgeFusion, GatedKnowledgeFusion
from rw_tf.networks.encoder import ENCODER_INPUTS, TransformerEncoder

FUSIONS = {"gated": GatedKnowledgeFusion, "additive": AdditiveKnowledgeFusion}


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments(may_be_zero=("knowledge_layers",))
class KnowledgeEnhancedEncoder(ConfigFields, TransformerEncoder):
    """A ``TransformerEncoder`` that fuses linked entities' embeddings into the token states after
    the blocks in ``knowledge_layers`` (h' = g h + (1 - g) k for ``fusion="gated"``, see
    ``GatedKnowledgeFusion``); tokens without an entity (id -1) are left as they are.
    ``set_entity_embeddings`` loads pretrained entity vectors (TransE's).

    Args:
        vocab_size: number of token ids.
        num_entities: number of entity ids (the knowledge graph's entities).
        entity_embedding_dim: size of the entity embeddings (TransE's ``embedding_dim``).
        knowledge_layers: indices of the blocks after which knowledge is fused (each once).
        fusion: ``"gated"`` (``GatedKnowledgeFusion``) or ``"additive"`` (``AdditiveKnowledgeFusion``).
        freeze_entity_embeddings: keep the entity embeddings fixed in training.
        **kwargs: the ``TransformerEncoder`` sizes (``hidden_size``, ``num_layers``, ...).
    Shapes:
        Inputs: the encoder inputs plus ``entity_ids`` [batch, seq] int (-1 = no entity, from
        ``EntityLinker``). Outputs: as ``TransformerEncoder``, ``sequence_output`` [batch, seq, hidden]
        and ``pooled_output`` [batch, hidden].

    Example:
        >>> enc = KnowledgeEnhancedEncoder(vocab_size=100, num_entities=14, entity_embedding_dim=8,
        ...                                hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
        ...                                knowledge_layers=(1,))
        >>> ids = keras.ops.ones((2, 6), dtype="int32")
        >>> out = enc({"token_ids": ids, "segment_ids": ids * 0, "padding_mask": ids, "entity_ids": ids - 2})
        >>> tuple(out["sequence_output"].shape)
        (2, 6, 16)
    """

    input_names = ENCODER_INPUTS + ("entity_ids",)

    config_fields = ("num_entities", "entity_embedding_dim", "knowledge_layers", "fusion",
                     "freeze_entity_embeddings")

    def __init__(self, vocab_size: int, num_entities: int, entity_embedding_dim: int,
                 knowledge_layers: Sequence[int] = (0,), fusion: str = "gated",
                 freeze_entity_embeddings: bool = True, **kwargs: Any) -> None:
        super().__init__(vocab_size, **kwargs)
        with sublayer_policy(self):  # sub-layers take this layer's dtype policy
            check_choice("fusion", fusion, FUSIONS)
            bad = [i for i in knowledge_layers if not 0 <= i < self.config.num_layers]
            if bad or not knowledge_layers or len(set(knowledge_layers)) < len(knowledge_layers):
                raise ValueError(f"knowledge_layers {list(knowledge_layers)} must name blocks of this encoder, "
                                 f"each once (at least one, each 0 to {self.config.num_layers - 1})")
            self.set_config_fields(locals())
            self.knowledge_layers = tuple(int(i) for i in knowledge_layers)
            self.entity_embedding = keras.layers.Embedding(num_entities, entity_embedding_dim, name="entity_embedding",
                                                           trainable=not freeze_entity_embeddings)
            self.fusion_layers = [FUSIONS[fusion](self.config.hidden_size,
                                                  initializer_range=self.config.initializer_range,
                                                  name=f"knowledge_fusion_{i}") for i in self.knowledge_layers]

    def set_entity_embeddings(self, embeddings: np.ndarray) -> None:
        """Loads pretrained entity vectors (e.g. ``TransE.entity_embedding.embeddings``)."""
        if not self.entity_embedding.built:
            self.entity_embedding.build((None,))
        if tuple(embeddings.shape) != (self.num_entities, self.entity_embedding_dim):
            raise ValueError(f"entity embeddings must be {(self.num_entities, self.entity_embedding_dim)}, "
                             f"got {tuple(embeddings.shape)}")
        self.entity_embedding.embeddings.assign(np.asarray(embeddings, np.float32))

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        shape = tuple(input_shape["token_ids"]) if isinstance(input_shape, dict) else tuple(input_shape)
        if not self.entity_embedding.built:
            self.entity_embedding.build((None,))
        for layer in self.fusion_layers:
            layer.build(shape + (self.config.hidden_size,), shape + (self.entity_embedding_dim,), shape)

    def _knowledge_context(self, inputs: Dict[str, Any]) -> Any:
        if "entity_ids" not in inputs:
            raise KeyError("a knowledge-enhanced encoder needs 'entity_ids' (use -1 where there is no entity)")
        entity_ids = ops.cast(checked_ids(inputs["entity_ids"], self.num_entities, "entity_ids", low=-1,
                                          limit="-1: no entity; num_entities"), "int32")
        return self.entity_embedding(ops.maximum(entity_ids, 0)), ops.cast(entity_ids >= 0, "float32")

    def _after_block(self, index: int, hidden_states: Any, context: Any) -> Any:
        if index not in self.knowledge_layers:
            return hidden_states
        entities, entity_mask = context
        return self.fusion_layers[self.knowledge_layers.index(index)](hidden_states, entities, entity_mask)
