"""The ``rw-tf`` command line. Each subcommand has ``--help``.

    rw-tf vocab    --output vocab.txt [--input FILE ...] [--vocab-size N]
    rw-tf pretrain --output-dir DIR [--preset tiny|small|base] [--input FILE ...] [--epochs N] ...
    rw-tf pipeline run [--config cfg.json] [--kind pretrain|finetune|all]
    rw-tf pipeline compile --target kubeflow [--image IMAGE] [--output FILE]
    rw-tf serve --model-base-path DIR | --model-config-file models.config [--port 8500] ...
    rw-tf predict --server host:port --model NAME [--signature SIG] TEXT ... | --input NAME=VALUE ...
    rw-tf serving-config --push-root DIR --output-dir DIR
    rw-tf kg train --dataset kinships --output-dir DIR   |   rw-tf kg eval --model-dir DIR --dataset kinships
    rw-tf finetune --task classification|retrieval|qa --output-dir DIR [--checkpoint HF_BERT_DIR] [--train F --eval F]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the terminal


def _add_vocab(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vocab", help="learn a WordPiece vocabulary from text files (or the embedded corpus)")
    p.add_argument("--output", required=True, help="where to write vocab.txt")
    p.add_argument("--input", nargs="*", default=[], help="UTF-8 text files; default: the embedded corpus")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--min-count", type=int, default=2, help="ignore words seen fewer times")
    p.add_argument("--no-lower-case", dest="lower_case", action="store_false",
                   help="keep case and accents (cased vocabulary)")
    p.set_defaults(func=_run_vocab)


def _run_vocab(args: argparse.Namespace) -> int:
    from rw_tf.data.corpus import embedded_corpus, read_text_files
    from rw_tf.tokenization import learn_vocabulary, write_vocabulary

    docs = read_text_files(args.input) if args.input else embedded_corpus()
    vocab = learn_vocabulary((s for d in docs for s in d), args.vocab_size, lower_case=args.lower_case,
                             min_count=args.min_count)
    write_vocabulary(vocab, args.output)
    print(f"wrote {len(vocab)} tokens learned from {len(docs)} documents to {args.output}")
    return 0


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    from rw_tf.config import ENCODER_PRESETS
    from rw_tf.training.pretrain import PretrainRunConfig
    from rw_tf.training.strategy import STRATEGIES

    p = sub.add_parser("pretrain", help="pretrain an encoder (MLM + NSP + SOP) with Keras fit")
    defaults = PretrainRunConfig(output_dir="")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--preset", choices=sorted(ENCODER_PRESETS), default=defaults.preset)
    p.add_argument("--input", dest="corpus_files", nargs="*", default=[],
                   help="UTF-8 text files (documents separated by '---' lines or two blank lines); "
                        "default: the embedded corpus (Python's own documentation)")
    p.add_argument("--vocab-file", help="use this vocabulary instead of learning one")
    p.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy)
    p.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    p.add_argument("--whole-word-masking", action="store_true")
    p.add_argument("--no-lower-case", dest="lower_case", action="store_false")
    for field in ("max_documents", "vocab_size", "target_words", "max_sequence_length",
                  "max_predictions_per_seq", "batch_size", "epochs", "steps_per_epoch", "eval_batches",
                  "warmup_steps", "seed"):
        default = getattr(defaults, field)
        p.add_argument("--" + field.replace("_", "-"), type=int, default=default,
                       help=f"default: {default}")
    for field in ("learning_rate", "weight_decay", "nsp_weight", "sop_weight", "eval_fraction"):
        default = getattr(defaults, field)
        p.add_argument("--" + field.replace("_", "-"), type=float, default=default, help=f"default: {default}")
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from rw_tf.training.pretrain import PretrainRunConfig, run_pretraining

    fields = {f.name for f in dataclasses.fields(PretrainRunConfig)}
    config = PretrainRunConfig(**{k: v for k, v in vars(args).items() if k in fields})
    result = run_pretraining(config)
    first, last = result["initial_eval"], result["final_eval"]
    print(json.dumps({
        "model": result["model_path"], "vocab": result["vocab_path"],
        "eval_mlm_loss": {"start": first and first["mlm_loss"], "end": last["mlm_loss"]},
        "eval_mlm_accuracy": {"start": first and first["mlm_accuracy"], "end": last["mlm_accuracy"]},
        "train_seconds": round(result["train_seconds"], 1),
    }, indent=2))
    return 0


def _add_pipeline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run or compile the TFX pipelines")
    actions = p.add_subparsers(dest="action", required=True)
    for name, helptext in (("run", "run with LocalDagRunner (prepares data first)"),
                           ("prepare", "only write the pipelines' JSONL inputs and vocab.txt"),
                           ("compile", "compile for an orchestrator (Kubeflow Pipelines v2)")):
        a = actions.add_parser(name, help=helptext)
        a.add_argument("--config", help="JSON file with PipelineConfig fields (see pipeline/configs.py)")
        a.add_argument("--root", help="override the config's root folder")
        a.add_argument("--kind", choices=("pretrain", "finetune", "all"), default="all")
        if name in ("run", "prepare"):
            a.add_argument("--input", dest="corpus_files", nargs="*", default=[],
                           help="text files instead of the embedded corpus")
        if name == "compile":
            a.add_argument("--target", choices=("kubeflow",), default="kubeflow")
            a.add_argument("--image", default=None, help="container image with rw-tf installed")
            a.add_argument("--pipeline-root", default="", help="e.g. gs://bucket/rw-tf (default: local root)")
            a.add_argument("--output-dir", default=".", help="where to write <pipeline>.json")
    p.set_defaults(func=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> int:
    from pipeline.configs import KINDS, PipelineConfig

    overrides = {"root": args.root} if args.root else {}
    config = (PipelineConfig.from_json_file(args.config, **overrides) if args.config
              else PipelineConfig(**overrides))
    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    if args.action == "prepare":
        from pipeline.prepare import prepare_data

        print(json.dumps(prepare_data(config, args.corpus_files), indent=2))
    elif args.action == "run":
        from pipeline.local_runner import run_all

        summaries = run_all(config, kinds, args.corpus_files)
        print(json.dumps(summaries, indent=2))
        return 0 if all(s["blessed"] for s in summaries.values()) else 3
    else:
        from pipeline.kubeflow_runner import DEFAULT_IMAGE, compile_kubeflow

        for kind in kinds:
            out = os.path.join(args.output_dir, f"{config.pipeline_name(kind)}.json")
            compile_kubeflow(kind, config, out, args.image or DEFAULT_IMAGE, args.pipeline_root)
            print(f"wrote {out}")
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve SavedModels over TF Serving's gRPC (and REST) API")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-base-path", help="directory of numbered versions (a Pusher output)")
    src.add_argument("--model-config-file", help="TF Serving models.config (ModelServerConfig text proto)")
    p.add_argument("--model-name", help="default: the base path's folder name")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=8500)
    p.add_argument("--rest-api-port", type=int, default=None, help="also serve REST on this port")
    p.add_argument("--version-policy", choices=("latest", "all", "specific"), default="latest")
    p.add_argument("--num-versions", type=int, default=1, help="with --version-policy latest")
    p.add_argument("--versions", type=int, nargs="*", default=[], help="with --version-policy specific")
    p.add_argument("--enable-batching", action="store_true")
    p.add_argument("--batching-parameters-file", help="BatchingParameters text proto (implies batching)")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-timeout-micros", type=int, default=2000)
    p.add_argument("--file-system-poll-wait-seconds", type=float, default=2.0)
    p.add_argument("--max-text-bytes", type=int, default=100_000)
    p.add_argument("--max-request-bytes", type=int, default=16 * 1024 * 1024)
    p.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    import logging

    from serving.config import BatchingParameters, ModelSpec, read_models_config
    from serving.core import ServerLimits
    from serving.server import LocalModelServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.model_config_file:
        specs = read_models_config(args.model_config_file)
    else:
        name = args.model_name or os.path.basename(os.path.normpath(args.model_base_path))
        specs = [ModelSpec(name, os.path.abspath(args.model_base_path), args.version_policy, args.num_versions,
                           tuple(args.versions))]
    batching = None
    if args.batching_parameters_file:
        with open(args.batching_parameters_file, encoding="utf-8") as f:
            batching = BatchingParameters.from_text(f.read())
    elif args.enable_batching:
        batching = BatchingParameters(max_batch_size=args.max_batch_size,
                                      batch_timeout_micros=args.batch_timeout_micros)
    server = LocalModelServer(specs, args.host, args.port, args.rest_api_port, batching,
                              ServerLimits(args.max_text_bytes, args.max_request_bytes),
                              args.file_system_poll_wait_seconds)
    server.start()
    print(f"serving {[s.name for s in specs]} on {args.host}:{server.grpc_port}"
          + (f", REST on {args.host}:{server.rest_port}" if args.rest_api_port is not None else ""), flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="send texts to a served model (gRPC, or REST with --rest)",
                       epilog="Signatures with several inputs: --input question='Who?' --input context='...' "
                              "(repeat a name for a batch).")
    p.add_argument("texts", nargs="*", help="values of --input-name (default input 'text')")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--server", default="127.0.0.1:8500", help="gRPC host:port")
    target.add_argument("--rest", help="REST base URL, e.g. http://127.0.0.1:8501")
    p.add_argument("--model", required=True)
    p.add_argument("--signature", default="classify_text")
    p.add_argument("--input-name", default="text")
    p.add_argument("--input", dest="named_inputs", action="append", default=[], metavar="NAME=VALUE",
                   help="a string input by name; repeatable")
    p.add_argument("--version", type=int)
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=_run_predict)


def _predict_inputs(args: argparse.Namespace) -> dict:
    inputs: dict = {}
    if args.texts:
        inputs[args.input_name] = list(args.texts)
    for item in args.named_inputs:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--input expects NAME=VALUE, got {item!r}")
        inputs.setdefault(name, []).append(value)
    if not inputs:
        raise ValueError("nothing to send: give TEXT arguments or --input NAME=VALUE")
    sizes = {name: len(values) for name, values in inputs.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"every input needs the same number of values, got {sizes}")
    return inputs


def _run_predict(args: argparse.Namespace) -> int:
    inputs = _predict_inputs(args)
    if args.rest:
        from serving.client import rest_predict

        result = rest_predict(args.rest, args.model, inputs=inputs,
                              signature=args.signature, version=args.version, timeout=args.timeout)
    else:
        import grpc

        from serving.client import ServingClient

        client = ServingClient(args.server, timeout=args.timeout)
        try:
            result = client.predict(args.model, inputs, args.signature, args.version)
        except grpc.RpcError as err:
            print(f"rw-tf predict: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
        finally:
            client.close()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _add_serving_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serving-config", help="write TF Serving configs (models.config, batching, "
                                              "monitoring, Kubernetes) for a push directory")
    p.add_argument("--push-root", required=True, help="folder holding one folder per pushed model")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--models-mount", default="/models", help="where the push root is mounted in the container")
    p.add_argument("--num-versions", type=int, default=1)
    p.set_defaults(func=_run_serving_config)


def _run_serving_config(args: argparse.Namespace) -> int:
    from serving.config import docker_command, write_serving_configs

    paths = write_serving_configs(args.push_root, args.output_dir, args.models_mount, num_latest=args.num_versions)
    print(json.dumps(paths, indent=2))
    print("TF Serving (docker):\n  " + docker_command(args.push_root, args.output_dir))
    return 0


def _add_kg(sub: argparse._SubParsersAction) -> None:
    from rw_tf.knowledge.training import TransEConfig

    p = sub.add_parser("kg", help="knowledge-graph embeddings (TransE): train and evaluate")
    actions = p.add_subparsers(dest="action", required=True)
    defaults = TransEConfig()
    for name in ("train", "eval"):
        a = actions.add_parser(name, help=f"{name} TransE (filtered MRR, Hits@1/3/10)")
        a.add_argument("--dataset", choices=("nations", "kinships", "umls"), help="a dataset shipped by pykeen")
        a.add_argument("--train", dest="train_file", help="triples TSV: head<TAB>relation<TAB>tail")
        a.add_argument("--valid", dest="valid_file")
        a.add_argument("--test", dest="test_file")
        if name == "train":
            a.add_argument("--output-dir", required=True)
            for field in ("embedding_dim", "norm", "num_negatives", "epochs", "batch_size", "seed"):
                a.add_argument("--" + field.replace("_", "-"), type=int, default=getattr(defaults, field))
            for field in ("margin", "learning_rate"):
                a.add_argument("--" + field.replace("_", "-"), type=float, default=getattr(defaults, field))
            a.add_argument("--strategy", default="default")
        else:
            a.add_argument("--model-dir", required=True)
    p.set_defaults(func=_run_kg)


def _run_kg(args: argparse.Namespace) -> int:
    from rw_tf.knowledge.training import TransEConfig, evaluate_model_dir, train_transe

    fields = {f.name for f in dataclasses.fields(TransEConfig)}
    config = TransEConfig(**{k: v for k, v in vars(args).items() if k in fields})
    if args.action == "train":
        result = train_transe(config, args.output_dir, verbose=2)
        print(json.dumps({k: result[k] for k in ("test_metrics", "train_seconds", "rejected_rows")}, indent=2))
    else:
        print(json.dumps(evaluate_model_dir(args.model_dir, config), indent=2))
    return 0


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a pretrained encoder on a downstream task",
                       description="Unset numeric options take the task's defaults (see the *Config "
                                   "dataclasses in rw_tf.finetuning).")
    p.add_argument("--task", choices=("classification", "retrieval", "qa"), required=True)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--checkpoint", help="Hugging Face BERT folder (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--train", dest="train_file", help="classification: JSONL with text + label (or labels "
                                                      "with --multi-label); qa: JSONL with question, context, "
                                                      "answer[, answer_start]")
    p.add_argument("--eval", dest="eval_file")
    p.add_argument("--multi-label", action="store_true", default=None)
    for field in ("num_classes", "max_sequence_length", "batch_size", "epochs", "max_steps_per_epoch",
                  "max_examples_per_class", "max_examples", "seed", "steps", "doc_stride", "max_question_length",
                  "max_answer_length", "max_windows", "max_train_examples", "max_eval_examples"):
        p.add_argument("--" + field.replace("_", "-"), type=int)
    p.add_argument("--learning-rate", type=float, help="default: 5e-5 (classification, qa), 3e-5 (retrieval)")
    p.add_argument("--kd-teacher", help="classification: knowledge model (classifier.keras) for L_task + beta L_KD")
    p.add_argument("--kd-weight", type=float, help="beta of refined fine-tuning (default 0.5)")
    p.add_argument("--kd-temperature", type=float)
    p.add_argument("--pairs", dest="pairs_file", help="retrieval: JSONL with query + item (+ group)")
    p.add_argument("--separate-towers", action="store_true", default=None,
                   help="retrieval: do not share query/item encoders")
    p.set_defaults(func=_run_finetune)


def _run_finetune(args: argparse.Namespace) -> int:
    from rw_tf.finetuning.classification import ClassificationConfig, finetune_classifier
    from rw_tf.finetuning.question_answering import QAConfig, finetune_question_answering
    from rw_tf.finetuning.retrieval import RetrievalConfig, finetune_retrieval

    config_class, run = {"classification": (ClassificationConfig, finetune_classifier),
                         "retrieval": (RetrievalConfig, finetune_retrieval),
                         "qa": (QAConfig, finetune_question_answering)}[args.task]
    # Unset options (None) take the task config's defaults; set ones must be fields of that config.
    values = {k: v for k, v in vars(args).items() if v is not None and k not in ("command", "func", "task")}
    if values.pop("separate_towers", None):
        values["shared_towers"] = False
    fields = {f.name for f in dataclasses.fields(config_class)}
    unused = sorted(set(values) - fields)
    if unused:
        print(f"rw-tf finetune: options not used by --task {args.task}: {unused}", file=sys.stderr)
        return 2
    result = run(config_class(**values), verbose=2)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rw-tf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_vocab(sub)
    _add_pretrain(sub)
    _add_pipeline(sub)
    _add_serve(sub)
    _add_predict(sub)
    _add_serving_config(sub)
    _add_kg(sub)
    _add_finetune(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, KeyError, FileNotFoundError, OSError) as err:
        # User errors get one clear line, not a traceback.
        print(f"rw-tf {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
