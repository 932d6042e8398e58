"""Every Keras layer, model, loss and metric that rw_tf registers documents its arguments, its
shapes and an example, and the example runs (as a doctest) with the output it shows."""
import doctest
import inspect
import re
import sys

import keras
import numpy as np
import pytest

import rw_tf

SECTIONS = ("Args:", "Shapes:", "Example:")


def registered_classes():
    """The classes ``import rw_tf`` registers for Keras deserialization that users build: layers
    (models are layers), losses and metrics."""
    return [obj for name, obj in sorted(keras.saving.get_custom_objects().items())
            if name.startswith("rw_tf>") and inspect.isclass(obj)
            and issubclass(obj, (keras.layers.Layer, keras.losses.Loss, keras.metrics.Metric))]


CLASSES = registered_classes()


def section(doc: str, title: str) -> str:
    """The text of ``title``'s section: up to the next section title, or the end."""
    body = doc.partition(title)[2]
    ends = [body.find(other) for other in SECTIONS if other != title and body.find(other) >= 0]
    return body[:min(ends)] if ends else body


def test_the_public_classes_are_all_checked():
    names = {cls.__name__ for cls in CLASSES}
    assert {"TransformerEncoder", "TransformerEncoderBlock", "PretrainingModel", "TextClassifier",
            "SpanQuestionAnswerer", "DualEncoder", "SentenceEncoder", "KnowledgeEnhancedEncoder", "TransE",
            "GatedKnowledgeFusion", "ImageTextModel", "ImageTextMatcher", "TwoTowerRecommender",
            "InfoNCELoss", "KnowledgeDistillationLoss"} <= names
    missing = [cls.__name__ for cls in CLASSES if getattr(rw_tf, cls.__name__, None) is not cls]
    assert not missing, f"not exposed by `import rw_tf`: {missing}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_docstring_names_every_argument_the_shapes_and_an_example(cls):
    doc = inspect.getdoc(cls) or ""
    assert all(title in doc for title in SECTIONS), f"{cls.__name__}: needs the sections {SECTIONS}"
    arguments = section(doc, "Args:")
    parameters = [name for name, p in inspect.signature(cls.__init__).parameters.items()
                  if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    missing = [name for name in parameters if not re.search(rf"\b{name}\b", arguments)]
    assert not missing, f"{cls.__name__}: Args does not describe {missing}"
    assert re.search(r"\[[^\]]*batch", section(doc, "Shapes:")), f"{cls.__name__}: Shapes gives no [batch, ...]"
    assert ">>>" in section(doc, "Example:"), f"{cls.__name__}: the example has no code"


FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def run_examples(cls, runner):
    """Runs ``cls``'s docstring examples with ``runner``; returns the doctests (their globals kept,
    so the objects an example made can be read) and the runner's report."""
    module = sys.modules[cls.__module__]
    # An example may use anything ``import rw_tf`` exposes, besides its own module's names.
    globs = {**{name: getattr(rw_tf, name) for name in rw_tf.__all__}, **vars(module),
             "keras": keras, "ops": keras.ops, "np": np, "rw_tf": rw_tf}
    report = []
    tests = doctest.DocTestFinder(recurse=False).find(cls, cls.__name__, module=module, globs=globs)
    for test in tests:
        runner.run(test, out=report.append, clear_globs=False)
    return tests, "".join(report)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_docstring_example_runs_and_shows_its_output(cls):
    keras.utils.set_random_seed(0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests, report = run_examples(cls, runner)
    assert runner.tries > 0 and runner.failures == 0, report
    assert not any(example.options for test in tests for example in test.examples), \
        f"{cls.__name__}: an example carries a directive (+SKIP?)"


class _ExceptionsOnly(doctest.DocTestRunner):
    """Reports only examples that raise: under another dtype policy printed numbers may differ."""

    def report_failure(self, out, test, example, got):
        pass


LAYER_CLASSES = [cls for cls in CLASSES if issubclass(cls, keras.layers.Layer)]


@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda cls: cls.__name__)
def test_example_objects_take_the_dtype_policy_and_round_trip_their_config(cls):
    """Each object the docstring example builds under the global policy mixed_bfloat16: it and every
    layer in it take that policy; ``from_config(get_config())`` under the float32 global policy gives
    an equal config and the same policy in every layer (the config's policy reaches the sub-layers);
    the config holds every constructor argument (``config_fields`` names them all)."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        tests, report = run_examples(cls, _ExceptionsOnly(optionflags=FLAGS))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    made = [value for test in tests for value in test.globs.values() if type(value) is cls]
    assert made and "Exception raised" not in report, report
    for obj in made:
        config = obj.get_config()
        if cls.__name__ == "MaskedLMHead":       # the tied embedding is passed, not configured
            config = {**config, "token_embedding": obj.token_embedding}
        arguments = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                     if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        missing = [name for name in arguments if name not in config]
        assert not missing, f"{cls.__name__}.get_config() lacks the constructor arguments {missing}"
        clone = cls.from_config(config)
        assert clone.get_config() == obj.get_config()
        for model in (obj, clone):
            wrong = [layer.name for layer in model._flatten_layers() if layer.dtype_policy.name != "mixed_bfloat16"]
            assert not wrong, f"{cls.__name__}: layers not under the policy mixed_bfloat16: {wrong}"
