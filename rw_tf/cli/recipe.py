"""``rw-tf recipe``: the three-stage training recipe on the Nations domain demo and its ablation
table (``rw_tf.recipe``): a line per stage, the table at the end, everything in ``recipe.json``."""
from __future__ import annotations

import argparse
import sys

from rw_tf.cli.options import add_config_options, set_values
from rw_tf.recipe import RecipeConfig, run_recipe


def add_recipe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipe", help="general pretraining -> domain pretraining with KD -> refined fine-tuning, "
                                      "with the (a)-(d) ablation over seeds",
                       description=(__doc__ or "").strip())
    p.add_argument("--output-dir", required=True)
    add_config_options(p, RecipeConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = RecipeConfig.from_dict(set_values(args, RecipeConfig), "the command line")
    run_recipe(config, args.output_dir, log=lambda line: print(line, flush=True, file=sys.stdout))
    return 0
