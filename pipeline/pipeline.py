"""The pipeline factory shared by every pipeline kind and orchestrator.

A *stage* trains one task:

    PrepareData -> JSONL ExampleGen (train/eval folders) -> StatisticsGen -> ImportSchemaGen -> ExampleValidator
      -> AnomaliesGate -> Transform (rw_tf TF ops, vocab asset) -> Trainer (rw_tf runner, tf.distribute)
      -> Evaluator (TFMA thresholds + change vs. latest blessed) -> Pusher (filesystem, versioned)

Kinds: ``pretrain`` (the encoder on segment pairs, gated on masked-LM accuracy), ``finetune`` (a
classifier warm-started from a pretrained encoder: ``pretrained_model_uri`` or, locally, the newest
pushed pretraining version through an Importer; gated on accuracy and AUC), ``recipe`` (both
stages in one pipeline: fine-tuning starts from this run's pretrained model, only if it was
blessed; what a cluster schedules) and ``embedding`` (contrastive sentence embeddings from
``embedding_init_from``, default all-MiniLM-L6-v2, on (query, item, negative) docstring examples;
gated on pair accuracy: queries closer to their item than to a hard negative) and
``recommendation`` (a ``TwoTowerRecommender`` on the standard library's import graph, leave-one-out;
gated on hit@10 of the held-out items) and ``multimodal`` (an ``ImageTextMatcher``: ViT image
encoder, text encoder, cross-attention fusion, trained on handwritten digits whose PNG bytes travel
in the tf.Examples; Transform decodes them; gated on image-text matching accuracy). Transform and
Trainer name their functions by module path (``rw_tf_pipeline.modules...``), so the same definition
runs locally and from the container image.
"""
from __future__ import annotations

import json
import os
from typing import List, Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from rw_tf.errors import UserError
from rw_tf_pipeline.components import jsonl_example_gen
from rw_tf_pipeline.components.anomalies_gate import AnomaliesGate
from rw_tf_pipeline.components.prepare_data import PrepareData
from rw_tf_pipeline.configs import KINDS, PipelineConfig, is_remote
from rw_tf_serving.servables import list_versions

TRAINER_RUN_FN = "rw_tf_pipeline.modules.trainer.run_fn"


def preprocessing_fn_path(stage: str) -> str:
    return f"rw_tf_pipeline.modules.{stage}_transform.preprocessing_fn"


def _threshold(lower_bound: float, max_drop: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -max_drop}))


def gate_metrics(stage: str, config: PipelineConfig) -> dict:
    """The metrics each stage is gated on, with their lower bounds."""
    if stage == "pretrain":
        return {"masked_lm_accuracy": config.mlm_accuracy_lower_bound}
    if stage == "embedding":
        return {"pair_accuracy": config.pair_accuracy_lower_bound}
    if stage == "recommendation":
        return {"hit_at_10": config.hit_at_10_lower_bound}
    if stage == "multimodal":
        return {"match_accuracy": config.match_accuracy_lower_bound}
    return {"binary_accuracy": config.accuracy_lower_bound, "auc": config.auc_lower_bound}


def eval_config(stage: str, config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA config: labels and weights come from the transformed features (preprocessing function)."""
    bounds = gate_metrics(stage, config)
    if stage == "pretrain":
        # Per-example masked-LM accuracy weighted by the number of masked tokens = corpus accuracy.
        spec = tfma.ModelSpec(signature_name="serving_default", preprocessing_function_names=["transform_features"],
                              prediction_key="mlm_accuracy", label_key="nsp_label",
                              example_weight_key="mlm_num_masked")
        metrics = [tfma.MetricConfig(class_name="MeanPrediction", config='"name": "masked_lm_accuracy"',
                                     threshold=_threshold(bounds["masked_lm_accuracy"], config.max_metric_drop))]
    elif stage == "recommendation":
        # Share of held-out users whose next item is among their top 10 unseen items.
        spec = tfma.ModelSpec(signature_name="serving_default", preprocessing_function_names=["transform_features"],
                              prediction_key="hit_at_k", label_key="hit_label")
        metrics = [tfma.MetricConfig(class_name="MeanPrediction", config='"name": "hit_at_10"',
                                     threshold=_threshold(bounds["hit_at_10"], config.max_metric_drop))]
    elif stage == "multimodal":
        # Held-out images with their own caption and another class's, each classified by the ITM head.
        spec = tfma.ModelSpec(signature_name="serving_default", preprocessing_function_names=["transform_features"],
                              prediction_key="match_accuracy", label_key="match_label")
        metrics = [tfma.MetricConfig(class_name="MeanPrediction", config='"name": "match_accuracy"',
                                     threshold=_threshold(bounds["match_accuracy"], config.max_metric_drop))]
    elif stage == "embedding":
        # Share of eval queries closer to their item than to another item of the same module.
        spec = tfma.ModelSpec(signature_name="serving_default", preprocessing_function_names=["transform_features"],
                              prediction_key="pair_accuracy", label_key="pair_label")
        metrics = [tfma.MetricConfig(class_name="MeanPrediction", config='"name": "pair_accuracy"',
                                     threshold=_threshold(bounds["pair_accuracy"], config.max_metric_drop))]
    else:
        spec = tfma.ModelSpec(signature_name="serving_default", preprocessing_function_names=["transform_features"],
                              prediction_key="probability", label_key="label")
        metrics = [tfma.MetricConfig(class_name="BinaryAccuracy",
                                     threshold=_threshold(bounds["binary_accuracy"], config.max_metric_drop)),
                   tfma.MetricConfig(class_name="AUC", threshold=_threshold(bounds["auc"], config.max_metric_drop))]
    return tfma.EvalConfig(model_specs=[spec], slicing_specs=[tfma.SlicingSpec()],
                           metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                                                                    *metrics])])


def latest_pushed_version(serving_dir: str) -> Optional[str]:
    """The newest complete version directory (Pusher writes saved_model.pb last)."""
    versions = list_versions(serving_dir)
    return os.path.join(serving_dir, str(versions[-1])) if versions else None


def _stage(stage: str, config: PipelineConfig, prepare, suffix: str = "", base_model=None) -> List:
    """The components of one stage; ``suffix`` keeps ids unique when a pipeline has several stages."""
    named = lambda component, name: component.with_id(name + suffix)
    example_gen = named(FileBasedExampleGen(
        input_base=config.examples_dir(stage),
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=split, pattern=f"{split}/*") for split in ("train", "eval")]),
        custom_executor_spec=executor_spec.BeamExecutorSpec(jsonl_example_gen.Executor)), "FileBasedExampleGen")
    example_gen.add_upstream_node(prepare)
    statistics_gen = named(tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]), "StatisticsGen")
    schema_gen = named(tfx.components.ImportSchemaGen(schema_file=config.schema_file(stage)), "ImportSchemaGen")
    example_validator = named(tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                              schema=schema_gen.outputs["schema"]), "ExampleValidator")
    gate = named(AnomaliesGate(anomalies=example_validator.outputs["anomalies"]), "AnomaliesGate")
    transform = named(tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=preprocessing_fn_path(stage), custom_config=config.transform_config(stage).to_dict()),
        "Transform")
    transform.add_upstream_node(gate)
    trainer = named(tfx.components.Trainer(
        run_fn=TRAINER_RUN_FN, examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"], schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=config.train_steps(stage)),
        eval_args=tfx.proto.EvalArgs(num_steps=config.eval_steps(stage)),
        custom_config=config.trainer_contract(stage).to_custom_config(),
        **({"base_model": base_model} if base_model is not None else {})), "Trainer")
    resolver = named(tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing)),
        "latest_blessed_model_resolver")
    evaluator = named(tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"], eval_config=eval_config(stage, config)), "Evaluator")
    pusher = named(tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir(stage)))), "Pusher")
    return [example_gen, statistics_gen, schema_gen, example_validator, gate, transform, trainer, resolver,
            evaluator, pusher]


def _pretrained_importer(config: PipelineConfig, orchestrator: str):
    uri = config.pretrained_model_uri
    if uri is None and orchestrator == "local":
        uri = latest_pushed_version(config.serving_dir("pretrain"))
    if uri is None and orchestrator != "local":
        raise UserError("the fine-tuning pipeline for a cluster needs pretrained_model_uri (a pushed pretraining "
                        "version)", hint="or compile --kind recipe, which pretrains and fine-tunes in one pipeline")
    if uri is None:
        return None
    return tfx.dsl.Importer(source_uri=uri, artifact_type=tfx.types.standard_artifacts.Model
                            ).with_id("pretrained_encoder_importer")


def create_pipeline(kind: str, config: PipelineConfig, enable_cache: Optional[bool] = None,
                    orchestrator: str = "local") -> tfx.dsl.Pipeline:
    """The pipeline of ``kind`` for ``orchestrator`` ("local": LocalDagRunner with MLMD in SQLite
    under the root; "kubeflow": no local metadata, nothing looked up on the compiling machine)."""
    if kind not in KINDS:
        raise UserError(f"unknown pipeline kind {kind!r}; choose one of {KINDS}")
    prepare = PrepareData(pipeline_config=json.dumps(config.to_dict())).with_id("PrepareData")
    components: List = [prepare]
    if kind == "recipe":
        pretrain = _stage("pretrain", config, prepare, suffix="_pretrain")
        components += pretrain
        trainer, evaluator = pretrain[6], pretrain[8]
        with tfx.dsl.Cond(evaluator.outputs["blessing"].future()[0].custom_property("blessed") == 1):
            components += _stage("finetune", config, prepare, suffix="_finetune", base_model=trainer.outputs["model"])
    elif kind == "finetune":
        importer = _pretrained_importer(config, orchestrator)
        components += ([importer] if importer else []) + _stage(
            "finetune", config, prepare, base_model=importer.outputs["result"] if importer else None)
    else:
        components += _stage(kind, config, prepare)
    metadata = (tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
                if orchestrator == "local" else None)
    if orchestrator == "local" and is_remote(config.root):
        raise UserError(f"a local run needs a local root, got {config.root}", hint="compile for Kubeflow instead")
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name(kind), pipeline_root=config.pipeline_root(kind), components=components,
        enable_cache=config.enable_cache if enable_cache is None else enable_cache,
        metadata_connection_config=metadata, beam_pipeline_args=config.beam_pipeline_args())
