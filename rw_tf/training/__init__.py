"""Training: distribution strategies and the pretraining experiment runner."""
from rw_tf.training.strategy import STRATEGIES, get_strategy

__all__ = ["STRATEGIES", "get_strategy"]
