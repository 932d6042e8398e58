"""Trainer module of the fine-tuning pipeline: warm-start from the pretrained encoder, export."""
from rw_tf.training.tfx_training import train_text_classifier
from serving.export import export_classifier


def run_fn(fn_args):
    model, tft_output, tokenizer, max_len = train_text_classifier(fn_args)
    export_classifier(model, tft_output, tokenizer, fn_args.serving_model_dir, max_len)
