"""The pipeline factory shared by every pipeline kind and orchestrator.

    JSONL ExampleGen -> StatisticsGen -> ImportSchemaGen(schemas/<kind>) -> ExampleValidator
      -> AnomaliesGate -> Transform (rw_tf TF ops, vocab asset) -> Trainer (rw_tf runner, tf.distribute)
      -> Evaluator (TFMA thresholds + change vs. latest blessed) -> Pusher (filesystem, versioned)

``pretrain`` trains the encoder on segment pairs and gates on masked-LM accuracy; ``finetune``
trains a classifier warm-started from a pretrained encoder (an Importer of a pushed pretraining
model) and gates on accuracy and AUC. Transform and Trainer name their functions by module path
(``rw_tf_pipeline.modules...``), so the same definition runs locally and from a container image.
"""
from __future__ import annotations

import os
from typing import List, Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from rw_tf_pipeline.components import jsonl_example_gen
from rw_tf_pipeline.components.anomalies_gate import AnomaliesGate
from rw_tf_pipeline.configs import KINDS, PipelineConfig
from rw_tf_serving.servables import list_versions

TRAINER_RUN_FN = "rw_tf_pipeline.modules.trainer.run_fn"


def preprocessing_fn_path(kind: str) -> str:
    return f"rw_tf_pipeline.modules.{kind}_transform.preprocessing_fn"


def _threshold(lower_bound: float, max_drop: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -max_drop}))


def gate_metrics(kind: str, config: PipelineConfig) -> dict:
    """The metrics each kind is gated on, with their lower bounds."""
    if kind == "pretrain":
        return {"masked_lm_accuracy": config.mlm_accuracy_lower_bound}
    return {"binary_accuracy": config.accuracy_lower_bound, "auc": config.auc_lower_bound}


def eval_config(kind: str, config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA config: labels and weights come from the transformed features (preprocessing function)."""
    bounds = gate_metrics(kind, config)
    if kind == "pretrain":
        # Per-example masked-LM accuracy weighted by the number of masked tokens = corpus accuracy.
        spec = tfma.ModelSpec(signature_name="serving_default", preprocessing_function_names=["transform_features"],
                              prediction_key="mlm_accuracy", label_key="nsp_label",
                              example_weight_key="mlm_num_masked")
        metrics = [tfma.MetricConfig(class_name="MeanPrediction", config='"name": "masked_lm_accuracy"',
                                     threshold=_threshold(bounds["masked_lm_accuracy"], config.max_metric_drop))]
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


def create_pipeline(kind: str, config: PipelineConfig, enable_cache: Optional[bool] = None) -> tfx.dsl.Pipeline:
    if kind not in KINDS:
        raise ValueError(f"unknown pipeline kind {kind!r}; choose one of {KINDS}")
    components: List = []
    example_gen = FileBasedExampleGen(
        input_base=config.examples_dir(kind),
        custom_executor_spec=executor_spec.BeamExecutorSpec(jsonl_example_gen.Executor),
        output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=9),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)])))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_file(kind))
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                        schema=schema_gen.outputs["schema"])
    gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"]).with_id("AnomaliesGate")
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=preprocessing_fn_path(kind), custom_config=config.transform_config(kind).to_dict())
    transform.add_upstream_node(gate)
    components += [example_gen, statistics_gen, schema_gen, example_validator, gate, transform]

    trainer_args = {}
    if kind == "pretrain":
        steps = (config.pretrain_train_steps, config.pretrain_eval_steps)
    else:
        steps = (config.finetune_train_steps, config.finetune_eval_steps)
        pretrained = config.pretrained_model_uri or latest_pushed_version(config.serving_dir("pretrain"))
        if pretrained:
            importer = tfx.dsl.Importer(source_uri=pretrained, artifact_type=tfx.types.standard_artifacts.Model
                                        ).with_id("pretrained_encoder_importer")
            components.append(importer)
            trainer_args["base_model"] = importer.outputs["result"]
    trainer = tfx.components.Trainer(
        run_fn=TRAINER_RUN_FN, examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"], schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=steps[0]), eval_args=tfx.proto.EvalArgs(num_steps=steps[1]),
        custom_config=config.trainer_contract(kind).to_custom_config(), **trainer_args)
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"], eval_config=eval_config(kind, config))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir(kind))))
    components += [trainer, resolver, evaluator, pusher]

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name(kind), pipeline_root=config.pipeline_root(kind),
        components=components,
        enable_cache=config.enable_cache if enable_cache is None else enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path),
        beam_pipeline_args=config.beam_pipeline_args())
