"""Networks: layers composed into reusable backbones."""
from rw_tf.networks.encoder import TransformerEncoder
from rw_tf.networks.image_encoder import ConvImageEncoder, ViTImageEncoder
from rw_tf.networks.knowledge_encoder import KnowledgeEnhancedEncoder

__all__ = ["ConvImageEncoder", "KnowledgeEnhancedEncoder", "TransformerEncoder", "ViTImageEncoder"]
