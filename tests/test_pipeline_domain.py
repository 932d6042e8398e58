"""The domain pipeline kind: the recipe's stages 2 and 3 as TFX components (LocalDagRunner), from a
general model; the teachers are tracked inputs of the DistillationTrainers and are what the tasks
distil from; every stage is gated and pushed; no evaluation text is seen in training."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from rw_tf.knowledge.demo import nations_demo
from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.kubeflow_runner import compile_kubeflow
from rw_tf_pipeline.local_runner import run_pipeline
from rw_tf_pipeline.mlmd_queries import node_outputs, open_store
from rw_tf_pipeline.prepare import input_file


@pytest.fixture(scope="module")
def domain_run(tmp_path_factory, tiny_general_model):
    general = tiny_general_model
    config = PipelineConfig(root=str(tmp_path_factory.mktemp("domain")), pretrained_model_uri=os.path.join(
        general, "export", "1"), domain_train_steps=6, domain_eval_steps=2, triples_train_steps=6,
        triples_eval_steps=2, batch_size=8, beam_direct_running_mode="in_memory", mlm_accuracy_lower_bound=0.0,
        triples_accuracy_lower_bound=0.0, triples_auc_lower_bound=0.0)
    return general, config, run_pipeline("domain", config)


def _model_run(config, node):
    store = open_store(config.metadata_path)
    run = node_outputs(store, config.pipeline_name("domain"), node, "ModelRun")[-1]
    model = node_outputs(store, config.pipeline_name("domain"), node, "Model")[-1]
    with open(os.path.join(run.uri, "metrics.json")) as f:
        return json.load(f), model.uri


@pytest.mark.slow  # a full run of the four-Trainer pipeline: about 3 minutes
def test_every_stage_is_gated_and_pushed(domain_run):
    _, config, summary = domain_run
    assert set(summary) == {"knowledge_model", "domain", "refined"}
    for stage, result in summary.items():
        assert result["blessed"] and result["pushed"], (stage, result)
        assert result["pushed_destination"].startswith(config.serving_dir(stage))
    text = tf.constant(["usa exports brazil.", "uk ngo cuba."])
    refined = tf.saved_model.load(summary["refined"]["pushed_destination"])
    probabilities = refined.signatures["classify_text"](text=text)["probabilities"].numpy()
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow  # a full run of the four-Trainer pipeline: about 3 minutes
def test_teachers_are_the_knowledge_models_of_this_run(domain_run):
    general, config, _ = domain_run
    knowledge, knowledge_uri = _model_run(config, "Trainer_knowledge_model")
    domain, _ = _model_run(config, "Trainer_domain")
    classifier, classifier_uri = _model_run(config, "Trainer_knowledge_classifier")
    refined, _ = _model_run(config, "Trainer_refined")
    # f_K is knowledge-enhanced and starts from the general model; the student distils from f_K.
    assert knowledge["task_config"]["knowledge_dir"] and knowledge["task_config"]["init_from"].startswith(general)
    assert domain["task_config"]["kd_teacher"] == knowledge_uri and "kd_loss" in domain["history"]
    assert classifier["task_config"]["init_from"].startswith(knowledge_uri)
    assert refined["task_config"]["kd_teacher"] == classifier_uri and "kd_loss" in refined["history"]
    assert "kd_loss" not in knowledge["history"] and "kd_loss" not in classifier["history"]


@pytest.mark.slow  # a full run of the four-Trainer pipeline: about 3 minutes
def test_domain_splits_do_not_leak(domain_run):
    _, config, _ = domain_run
    read = lambda kind, split: [json.loads(line) for line in open(input_file(config, kind, split), encoding="utf-8")]
    demo = nations_demo(seed=config.seed)
    held_out = {s for d in demo.eval_documents for s in d}
    train_sentences = {s for d in demo.train_documents for s in d}
    for row in read("domain", "eval"):
        text = row["text_a"] + " " + row["text_b"]
        assert not any(sentence in text for sentence in train_sentences - held_out)
    triples_train = {r["text"] for r in read("triples", "train")}
    assert triples_train.isdisjoint({r["text"] for r in read("triples", "eval")})


def test_kubeflow_spec_of_the_domain_kind(tmp_path):
    config = PipelineConfig(root="gs://bucket/rw-tf", pretrained_model_uri="gs://bucket/rw-tf/serving/rw_tf_pretrain/1")
    paths = compile_kubeflow("domain", config, str(tmp_path / "rw-tf-domain.json"), pipeline_root="gs://bucket/rw-tf")
    spec = open(paths["pipeline"]).read()
    assert "DistillationExecutor" in spec and spec.count("Trainer_") >= 4
    assert "gs://bucket/rw-tf/serving/rw_tf_pretrain/1/assets/vocab.txt" in spec
