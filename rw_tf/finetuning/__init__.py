"""Fine-tuning pretrained encoders on downstream tasks (``rw-tf finetune --task ...``)."""
