"""The pipeline factory shared by every pipeline kind and orchestrator.

A *stage* trains one task:

    [RefineWebData] -> PrepareData -> JSONL ExampleGen (train/eval folders) -> StatisticsGen
      -> ImportSchemaGen -> ExampleValidator -> AnomaliesGate -> Transform (rw_tf TF ops, vocab asset)
      -> Trainer (rw_tf runner, tf.distribute)
      -> Evaluator (TFMA thresholds + change vs. latest blessed) -> Pusher (filesystem, versioned)

``RefineWebData`` (RefinedWeb's MacroData Refinement on Beam) precedes PrepareData in the
``pretrain`` and ``recipe`` kinds when the corpus is ``web`` (the default): web pages in, the refined
corpus PrepareData builds the pretraining examples from; the ``refine`` kind runs it alone.
Kinds: ``pretrain`` (the encoder on segment pairs, gated on masked-LM accuracy), ``finetune`` (a
classifier warm-started from a pretrained encoder: ``pretrained_model_uri`` or, locally, the newest
pushed pretraining version through an Importer; gated on accuracy and AUC), ``recipe`` (both
stages in one pipeline: fine-tuning starts from this run's pretrained model, only if it was
blessed; what a cluster schedules) and ``embedding`` (contrastive sentence embeddings from
``embedding_init_from``, default all-MiniLM-L6-v2, on (query, item, negative) docstring examples;
gated on pair accuracy: queries closer to their item than to a hard negative) and
``recommendation`` (a ``TwoTowerRecommender`` on the standard library's import graph, leave-one-out;
gated on hit@10 of the held-out items), ``domain`` (the training recipe's stages 2 and 3 on the
Nations demo, from a pushed general model: f_K, knowledge-enhanced domain pretraining; domain
pretraining with KD from f_K in a ``DistillationTrainer`` whose teacher is a tracked input; f_K
fine-tuned on triple classification; refined fine-tuning with KD from it; f_K, the domain model
and the refined model each gated and pushed) and ``multimodal`` (an ``ImageTextMatcher``: ViT image
encoder, text encoder, cross-attention fusion, trained on handwritten digits whose PNG bytes travel
in the tf.Examples; Transform decodes them; gated on image-text matching accuracy) and ``qa``
(extractive QA: a span head on ``qa_init_from``, default all-MiniLM-L6-v2, on the docstring
glossary set; Transform writes one row per question with all windows of its context; gated on the
share of held-out questions answered with exactly the answer's words). Transform and
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
from rw_tf.model_files import version_folders
from rw_tf_pipeline.components import jsonl_example_gen
from rw_tf_pipeline.components.anomalies_gate import AnomaliesGate
from rw_tf_pipeline.components.distillation_trainer import DistillationTrainer
from rw_tf_pipeline.components.prepare_data import PrepareData
from rw_tf_pipeline.components.refine_web import RefineWebData
from rw_tf_pipeline.configs import DOMAIN_STAGES, KINDS, PipelineConfig, is_remote
from rw_tf_pipeline.prepare import inputs_state

TRAINER_RUN_FN = "rw_tf_pipeline.modules.trainer.run_fn"


def preprocessing_fn_path(stage: str) -> str:
    return f"rw_tf_pipeline.modules.{stage}_transform.preprocessing_fn"


def _threshold(lower_bound: float, max_drop: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -max_drop}))


# What each stage is gated on: TFMA reads the prediction and label (and weight) keys from the
# transformed features; each metric's lower bound is the named PipelineConfig field.
#   pretraining stages: per-example masked-LM accuracy weighted by the number of masked tokens
#     (= corpus accuracy); recommendation: share of held-out users whose next item is among their
#     top 10 unseen items; multimodal: held-out images with their own caption and another class's,
#     each classified by the ITM head; embedding: share of eval queries closer to their item than
#     to another item of the same module; qa: held-out questions whose best span over all windows
#     of their context is exactly the answer's words; classification stages: accuracy and AUC.
_MEAN_GATES = {  # stage -> (metric, lower-bound field, prediction key, label key, weight key)
    "pretrain": ("masked_lm_accuracy", "mlm_accuracy_lower_bound", "mlm_accuracy", "nsp_label", "mlm_num_masked"),
    "recommendation": ("hit_at_10", "hit_at_10_lower_bound", "hit_at_k", "hit_label", None),
    "multimodal": ("match_accuracy", "match_accuracy_lower_bound", "match_accuracy", "match_label", None),
    "embedding": ("pair_accuracy", "pair_accuracy_lower_bound", "pair_accuracy", "pair_label", None),
    "qa": ("span_exact_match", "span_exact_match_lower_bound", "span_exact_match", "qa_label", None),
}
_MEAN_GATES["knowledge_model"] = _MEAN_GATES["domain"] = _MEAN_GATES["pretrain"]


def gate_metrics(stage: str, config: PipelineConfig) -> dict:
    """The metrics each stage is gated on, with their lower bounds."""
    if stage in _MEAN_GATES:
        metric, bound = _MEAN_GATES[stage][:2]
        return {metric: getattr(config, bound)}
    if stage == "refined":
        return {"binary_accuracy": config.triples_accuracy_lower_bound, "auc": config.triples_auc_lower_bound}
    return {"binary_accuracy": config.accuracy_lower_bound, "auc": config.auc_lower_bound}


def eval_config(stage: str, config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA config: labels and weights come from the transformed features (preprocessing function)."""
    bounds = gate_metrics(stage, config)
    threshold = lambda metric: _threshold(bounds[metric], config.max_metric_drop)
    if stage in _MEAN_GATES:
        metric, _, prediction_key, label_key, weight_key = _MEAN_GATES[stage]
        keys = dict(prediction_key=prediction_key, label_key=label_key, example_weight_key=weight_key)
        metrics = [tfma.MetricConfig(class_name="MeanPrediction", config=f'"name": "{metric}"',
                                     threshold=threshold(metric))]
    else:
        keys = dict(prediction_key="probability", label_key="label")
        metrics = [tfma.MetricConfig(class_name="BinaryAccuracy", threshold=threshold("binary_accuracy")),
                   tfma.MetricConfig(class_name="AUC", threshold=threshold("auc"))]
    spec = tfma.ModelSpec(signature_name="serving_default", preprocessing_function_names=["transform_features"],
                          **{k: v for k, v in keys.items() if v})
    return tfma.EvalConfig(model_specs=[spec], slicing_specs=[tfma.SlicingSpec()],
                           metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                                                                    *metrics])])


def latest_pushed_version(serving_dir: str) -> Optional[str]:
    """The newest complete version directory (Pusher writes saved_model.pb last)."""
    versions = version_folders(serving_dir)
    return os.path.join(serving_dir, versions[max(versions)]) if versions else None


def _data_components(data_kind: str, config: PipelineConfig, prepare, suffix: str, preprocessing_fn: str,
                     transform_config) -> List:
    """ExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> AnomaliesGate -> Transform."""
    named = lambda component, name: component.with_id(name + suffix)
    example_gen = named(FileBasedExampleGen(
        input_base=config.examples_dir(data_kind),
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=split, pattern=f"{split}/*") for split in ("train", "eval")]),
        custom_executor_spec=executor_spec.BeamExecutorSpec(jsonl_example_gen.Executor)), "FileBasedExampleGen")
    example_gen.add_upstream_node(prepare)
    statistics_gen = named(tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]), "StatisticsGen")
    schema_gen = named(tfx.components.ImportSchemaGen(schema_file=config.schema_file(data_kind)), "ImportSchemaGen")
    example_validator = named(tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                              schema=schema_gen.outputs["schema"]), "ExampleValidator")
    gate = named(AnomaliesGate(anomalies=example_validator.outputs["anomalies"]), "AnomaliesGate")
    transform = named(tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=preprocessing_fn, custom_config=transform_config.to_dict()), "Transform")
    transform.add_upstream_node(gate)
    return [example_gen, statistics_gen, schema_gen, example_validator, gate, transform]


def _trainer(data: List, steps: int, eval_steps: int, contract, component_id: str, base_model=None,
             teacher_model=None):
    """A Trainer on ``data``'s Transform output; with ``teacher_model``, a DistillationTrainer."""
    transform, schema_gen = data[5], data[2]
    args = dict(run_fn=TRAINER_RUN_FN, examples=transform.outputs["transformed_examples"],
                transform_graph=transform.outputs["transform_graph"], schema=schema_gen.outputs["schema"],
                train_args=tfx.proto.TrainArgs(num_steps=steps), eval_args=tfx.proto.EvalArgs(num_steps=eval_steps),
                custom_config=contract.to_custom_config(),
                **({"base_model": base_model} if base_model is not None else {}))
    if teacher_model is not None:
        return DistillationTrainer(teacher_model=teacher_model, **args).with_id(component_id)
    return tfx.components.Trainer(**args).with_id(component_id)


def _gated_push(trainer, example_gen, gate_kind: str, serving_dir: str, config: PipelineConfig,
                suffix: str) -> List:
    """Resolver (the latest blessed model of this Trainer) -> Evaluator (TFMA gate) -> Pusher."""
    named = lambda component, name: component.with_id(name + suffix)
    resolver = named(tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model, producer_component_id=trainer.id,
                              output_key="model"),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                       producer_component_id="Evaluator" + suffix, output_key="blessing")),
        "latest_blessed_model_resolver")
    evaluator = named(tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"], eval_config=eval_config(gate_kind, config)), "Evaluator")
    pusher = named(tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir))), "Pusher")
    return [resolver, evaluator, pusher]


def _stage(stage: str, config: PipelineConfig, prepare, suffix: str = "", base_model=None) -> List:
    """The components of one stage; ``suffix`` keeps ids unique when a pipeline has several stages."""
    data = _data_components(stage, config, prepare, suffix, preprocessing_fn_path(stage),
                            config.transform_config(stage))
    trainer = _trainer(data, config.train_steps(stage), config.eval_steps(stage), config.trainer_contract(stage),
                       "Trainer" + suffix, base_model)
    return data + [trainer] + _gated_push(trainer, data[0], stage, config.serving_dir(stage), config, suffix)


def _domain_stages(config: PipelineConfig, prepare, general, general_uri: str) -> List:
    """The recipe's stages 2 and 3 from the general model ``general`` (an Importer channel):
    f_K (knowledge-enhanced domain pretraining) -> domain pretraining with KD from f_K; f_K
    fine-tuned on the triple task -> refined fine-tuning with KD from it. f_K, the domain model and
    the refined model are each gated and pushed."""
    vocab = os.path.join(general_uri, "assets", "vocab.txt")  # both Transforms read the general model's
    domain = _data_components("domain", config, prepare, "_domain", preprocessing_fn_path("pretrain"),
                              config.domain_transform_config("domain", vocab))
    triples = _data_components("triples", config, prepare, "_triples", preprocessing_fn_path("finetune"),
                               config.domain_transform_config("triples", vocab))
    steps = (config.domain_train_steps, config.domain_eval_steps)
    knowledge_model = _trainer(domain, *steps, config.domain_trainer_contract("knowledge_model"),
                               "Trainer_knowledge_model", base_model=general)
    domain_model = _trainer(domain, *steps, config.domain_trainer_contract("domain"), "Trainer_domain",
                            base_model=general, teacher_model=knowledge_model.outputs["model"])
    steps = (config.triples_train_steps, config.triples_eval_steps)
    knowledge_classifier = _trainer(triples, *steps, config.domain_trainer_contract("knowledge_classifier"),
                                    "Trainer_knowledge_classifier", base_model=knowledge_model.outputs["model"])
    refined = _trainer(triples, *steps, config.domain_trainer_contract("refined"), "Trainer_refined",
                       base_model=domain_model.outputs["model"], teacher_model=knowledge_classifier.outputs["model"])
    components = domain + triples + [knowledge_model, domain_model, knowledge_classifier, refined]
    for trainer, stage in ((knowledge_model, "knowledge_model"), (domain_model, "domain"), (refined, "refined")):
        data = domain if DOMAIN_STAGES[stage] == "domain" else triples
        components += _gated_push(trainer, data[0], stage, config.serving_dir(stage), config, "_" + stage)
    return components


def _pretrained_model_uri(config: PipelineConfig, orchestrator: str) -> Optional[str]:
    """``pretrained_model_uri`` or, for a local run, the newest pushed pretraining version."""
    uri = config.pretrained_model_uri
    if uri is None and orchestrator == "local":
        uri = latest_pushed_version(config.serving_dir("pretrain"))
    if uri is None and orchestrator != "local":
        raise UserError("a pipeline for a cluster that starts from a pretrained model needs pretrained_model_uri "
                        "(a pushed pretraining version)",
                        hint="or compile --kind recipe, which pretrains and fine-tunes in one pipeline")
    return uri


def _pretrained_importer(uri: Optional[str]):
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
    config_json = json.dumps(config.to_dict())
    # Kubeflow: the files are read in the cluster, not on the compiling machine (see the README).
    state = {"inputs_state": inputs_state(config.user_inputs)} if orchestrator == "local" and config.user_inputs else {}
    components: List = []
    refined = {}
    if kind == "refine" or (kind in ("pretrain", "recipe") and config.refines_web):
        components.append(RefineWebData(pipeline_config=config_json, **state).with_id("RefineWebData"))
        refined = {"refined_corpus": components[0].outputs["refined_corpus"]}
    if kind != "refine":
        prepare = PrepareData(pipeline_config=config_json, kind=kind, **refined, **state).with_id("PrepareData")
        components.append(prepare)
    if kind == "domain":
        uri = _pretrained_model_uri(config, orchestrator)
        if uri is None:
            raise UserError("the domain pipeline starts from a general model and none is pushed yet",
                            hint="run --kind pretrain first, or set pretrained_model_uri")
        importer = _pretrained_importer(uri)
        components += [importer] + _domain_stages(config, prepare, importer.outputs["result"], uri)
    elif kind == "recipe":
        pretrain = _stage("pretrain", config, prepare, suffix="_pretrain")
        components += pretrain
        trainer, evaluator = pretrain[6], pretrain[8]
        with tfx.dsl.Cond(evaluator.outputs["blessing"].future()[0].custom_property("blessed") == 1):
            components += _stage("finetune", config, prepare, suffix="_finetune", base_model=trainer.outputs["model"])
    elif kind == "finetune":
        importer = _pretrained_importer(_pretrained_model_uri(config, orchestrator))
        components += ([importer] if importer else []) + _stage(
            "finetune", config, prepare, base_model=importer.outputs["result"] if importer else None)
    elif kind != "refine":
        components += _stage(kind, config, prepare)
    metadata = (tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
                if orchestrator == "local" else None)
    if orchestrator == "local" and is_remote(config.root):
        raise UserError(f"a local run needs a local root, got {config.root}", hint="compile for Kubeflow instead")
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name(kind), pipeline_root=config.pipeline_root(kind), components=components,
        enable_cache=config.enable_cache if enable_cache is None else enable_cache,
        metadata_connection_config=metadata, beam_pipeline_args=config.beam_pipeline_args())
