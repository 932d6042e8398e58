"""Importing pretrained checkpoints (Hugging Face BERT family, rw-tf exports) as encoders and tokenizers."""
from rw_tf.checkpoints.hf_bert import (
                                       UnsupportedCheckpointError,
                                       has_masked_lm_head,
                                       hf_bert_encoder,
                                       hf_bert_masked_lm,
                                       hf_bert_tokenizer,
                                       load_hf_bert,
                                       minilm_checkpoint_dir,
)
from rw_tf.checkpoints.pretrained import pretrained_encoder, pretrained_task_model, pretrained_tokenizer

__all__ = ["UnsupportedCheckpointError", "has_masked_lm_head", "hf_bert_encoder", "hf_bert_masked_lm",
           "hf_bert_tokenizer", "load_hf_bert", "minilm_checkpoint_dir", "pretrained_encoder",
           "pretrained_task_model", "pretrained_tokenizer"]
