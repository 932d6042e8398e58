"""Networks: layers composed into reusable backbones."""
from rw_tf.networks.encoder import TransformerEncoder

__all__ = ["TransformerEncoder"]
