"""Networks: layers composed into reusable backbones."""
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.networks.knowledge_encoder import KnowledgeEnhancedEncoder

__all__ = ["KnowledgeEnhancedEncoder", "TransformerEncoder"]
