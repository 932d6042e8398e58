"""Trainer module of the pretraining pipeline: train with rw_tf, export with serving.export."""
from rw_tf.training.tfx_training import knowledge_linker, train_pretraining_model
from serving.export import export_pretraining_model


def run_fn(fn_args):
    model, tft_output, tokenizer, max_len = train_pretraining_model(fn_args)
    linker = knowledge_linker(fn_args.custom_config or {}, tokenizer)
    export_pretraining_model(model, tft_output, tokenizer, fn_args.serving_model_dir, max_len, linker)
