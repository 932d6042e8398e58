"""Small Keras 3 layers (backend-agnostic: ``keras.ops`` only) that compose into networks."""
from rw_tf.layers.cross_attention import CrossAttentionBlock
from rw_tf.layers.embeddings import TransformerEmbeddings
from rw_tf.layers.knowledge_fusion import AdditiveKnowledgeFusion, GatedKnowledgeFusion
from rw_tf.layers.transformer_block import TransformerEncoderBlock

__all__ = [
    "AdditiveKnowledgeFusion", "CrossAttentionBlock", "GatedKnowledgeFusion", "TransformerEmbeddings",
    "TransformerEncoderBlock",
]
