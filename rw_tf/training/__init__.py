"""Training: the runner shared by every task, strategies, the optimizer and backup/resume."""
from rw_tf.training.backup import TrainingBackup
from rw_tf.training.optimizer import build_optimizer
from rw_tf.training.runner import TrainerConfig, run_task
from rw_tf.training.strategy import STRATEGIES, create_strategy, split_cpu, wait_for_all_workers

__all__ = ["STRATEGIES", "TrainerConfig", "TrainingBackup", "build_optimizer", "create_strategy", "run_task",
           "split_cpu", "wait_for_all_workers"]
