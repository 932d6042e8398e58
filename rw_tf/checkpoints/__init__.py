"""Importing pretrained checkpoints into rw_tf encoders and tokenizers."""
from rw_tf.checkpoints.hf_bert import UnsupportedCheckpointError, load_hf_bert, minilm_checkpoint_dir

__all__ = ["UnsupportedCheckpointError", "load_hf_bert", "minilm_checkpoint_dir"]
