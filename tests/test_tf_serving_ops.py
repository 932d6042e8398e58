"""TF Serving compatibility: every op in every exported signature's graph is registered by core
TensorFlow or by tensorflow-text (TF Serving links tensorflow_text:ops_lib into the model server,
tensorflow_serving/model_servers/BUILD, SUPPORTED_TENSORFLOW_OPS); nothing else may appear."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from rw_tf.data.qa_windows import WindowSpec
from rw_tf.export import ClassifierExport, PretrainingExport, QuestionAnsweringExport, RetrievalExport, save_export
from rw_tf.knowledge.entity_linking import EntityLinker
from rw_tf.models import DualEncoder, PretrainingModel, SpanQuestionAnswerer, TextClassifier
from rw_tf.networks import KnowledgeEnhancedEncoder, TransformerEncoder

REGISTRIES = """
import json, sys
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session
def registered():
    buf = pywrap_tf_session.TF_GetAllOpList()
    ops = op_def_pb2.OpList(); ops.ParseFromString(pywrap_tf_session.TF_GetBuffer(buf)); return {o.name for o in ops.op}
core = registered()
import tensorflow_text
print(json.dumps({"core": sorted(core), "text": sorted(registered() - core)}))
"""


@pytest.fixture(scope="module")
def registries():
    out = subprocess.run([sys.executable, "-c", REGISTRIES], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return set(found["core"]), set(found["text"])


def graph_ops(export_dir):
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(open(os.path.join(export_dir, "saved_model.pb"), "rb").read())
    ops = set()
    for graph in saved.meta_graphs:
        ops |= {node.op for node in graph.graph_def.node}
        for function in graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    functions = {f.signature.name for g in saved.meta_graphs for f in g.graph_def.library.function}
    return ops - functions   # a call of a library function is not an op


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tokenizer, pipeline_run):
    root = tmp_path_factory.mktemp("exports")
    shape = {k: (None, 32) for k in ("token_ids", "segment_ids", "padding_mask")}
    encoder = lambda: TransformerEncoder.from_preset("tiny", vocab_size=tokenizer.vocab_size)
    pretraining = PretrainingModel(encoder())
    pretraining.build({**shape, "masked_positions": (None, 4)})
    classifier = TextClassifier(encoder(), num_classes=2)
    classifier.build(shape)
    qa = SpanQuestionAnswerer(encoder())
    qa.build(shape)
    dual = DualEncoder(encoder())
    dual.build({"query": shape, "item": shape})
    knowledge = KnowledgeEnhancedEncoder(vocab_size=tokenizer.vocab_size, num_entities=3, entity_embedding_dim=4,
                                         hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    knowledge_classifier = TextClassifier(knowledge, num_classes=2)
    knowledge_classifier.build({**shape, "entity_ids": (None, 32)})
    linker = EntityLinker(tokenizer, {"list": 0, "tuple": 1, "dict": 2})
    modules = {
        "pretraining": PretrainingExport(pretraining, tokenizer, 32),
        "classifier": ClassifierExport(classifier, tokenizer, 32),
        "qa": QuestionAnsweringExport(qa, tokenizer, WindowSpec(32, 8, 8, 4), 8),
        "retrieval": RetrievalExport(dual, tokenizer, ["a list", "a tuple"], np.eye(2, 64), 32, 2),
        "knowledge_classifier": ClassifierExport(knowledge_classifier, tokenizer, 32, linker=linker),
    }
    dirs = {name: save_export(module, str(root / name)) for name, module in modules.items()}
    _, summaries = pipeline_run   # the pipeline's exports carry the tf.Transform graph too
    dirs.update({f"pipeline_{stage}": s["pushed_destination"] for stage, s in summaries.items()})
    return dirs


def test_every_exported_op_is_in_core_tensorflow_or_tensorflow_text(exports, registries):
    core, text = registries
    assert text, "importing tensorflow_text registers its ops"
    used_text = set()
    for name, export_dir in exports.items():
        ops = graph_ops(export_dir)
        unknown = sorted(ops - core - text)
        assert unknown == [], f"{name}: ops neither core TensorFlow nor tensorflow-text: {unknown}"
        used_text |= ops & text
    print("tensorflow-text ops the exports need:", sorted(used_text))
    assert {"RegexSplitWithOffsets", "WordpieceTokenizeWithOffsets"} <= used_text


def test_the_check_fails_on_an_unregistered_op(registries, tmp_path):
    core, text = registries
    saved = saved_model_pb2.SavedModel()
    saved.meta_graphs.add().graph_def.node.add(name="x", op="MyCustomOpThatNoServerHas")
    (tmp_path / "saved_model.pb").write_bytes(saved.SerializeToString())
    assert graph_ops(str(tmp_path)) - core - text == {"MyCustomOpThatNoServerHas"}
    assert tf.__version__.startswith("2.16")
