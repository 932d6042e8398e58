"""``rw-tf kg train|eval``: knowledge-graph embeddings (TransE) and filtered link prediction."""
from __future__ import annotations

import argparse
import json

from rw_tf.cli.options import add_config_options, set_values
from rw_tf.knowledge.training import TransEConfig, evaluate_model_dir, train_transe


def add_kg(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kg", help="knowledge-graph embeddings (TransE): train and evaluate")
    actions = p.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="train TransE; report filtered MRR, Hits@1/3/10 on the test split")
    train.add_argument("--output-dir", required=True)
    add_config_options(train, TransEConfig)
    evaluate = actions.add_parser("eval", help="filtered MRR, Hits@1/3/10 of a trained model")
    evaluate.add_argument("--model-dir", required=True)
    add_config_options(evaluate, TransEConfig, exclude=("embedding_dim", "norm", "margin", "num_negatives",
                                                        "epochs", "batch_size", "learning_rate", "strategy", "seed"))
    p.set_defaults(func=run_kg)


def run_kg(args: argparse.Namespace) -> int:
    config = TransEConfig(**set_values(args, TransEConfig))
    if args.action == "train":
        result = train_transe(config, args.output_dir, verbose=2)
        print(json.dumps({k: result[k] for k in ("test_metrics", "train_seconds", "rejected_rows")}, indent=2))
    else:
        print(json.dumps(evaluate_model_dir(args.model_dir, config), indent=2))
    return 0
