"""Trainer module of every pipeline kind: the typed contract in ``custom_config`` names the task."""
from rw_tf.tasks.tfx_trainer import run_fn as rw_tf_run_fn


def run_fn(fn_args):
    rw_tf_run_fn(fn_args)
