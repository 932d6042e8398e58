"""Every number of every config is range-checked when the config is made (DictConfig.check_numbers):
a negative learning rate, temperature or loss weight trained without a word, the wrong way."""
import dataclasses
import importlib
import inspect
import math
import pkgutil
import re

import keras
import numpy as np
import pytest

import rw_tf
from rw_tf.cli.main import main as cli_main
from rw_tf.config import SIZE_BOUNDS, DictConfig
from rw_tf.models.image_text import ImageTextModel
from rw_tf.networks.image_encoder import ConvImageEncoder
from rw_tf.networks.knowledge_encoder import KnowledgeEnhancedEncoder


def _config_classes():
    for module in pkgutil.walk_packages(rw_tf.__path__, "rw_tf."):
        importlib.import_module(module.name)
    importlib.import_module("rw_tf_pipeline.configs")
    found, todo = set(), [DictConfig]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: c.__name__)


def _required(cls):
    """Values for the fields without a default (file names)."""
    return {f.name: "x" for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}


def _number_fields(cls, instance):
    for field in dataclasses.fields(cls):
        value = getattr(instance, field.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield field.name
        elif value is None and any(t in str(field.type) for t in ("int", "float")):
            yield field.name


CLASSES = _config_classes()


def test_every_config_class_is_found():
    names = {c.__name__ for c in CLASSES}
    assert {"TrainerConfig", "PipelineConfig", "RecipeConfig", "TransEConfig", "EncoderConfig",
            "ClassificationTaskConfig", "RetrievalTaskConfig", "GopherQualityConfig"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_negative_and_non_finite_numbers_are_refused_naming_the_field(cls):
    base = _required(cls)
    fields = list(_number_fields(cls, cls(**base)))
    integers = {f.name for f in dataclasses.fields(cls) if str(f.type) in ("int", "Optional[int]")}
    for name in fields:
        for bad in (-1, math.nan, math.inf):
            # NaN and infinity are not integers: a TypeError where the field is an int
            error = TypeError if name in integers and bad != -1 else ValueError
            with pytest.raises(error, match=rf"{cls.__name__}\.{name} must be"):
                cls(**{**base, name: bad})


@pytest.mark.parametrize("cls, values", [
    ("TrainerConfig", {"learning_rate": 0}), ("TrainerConfig", {"seed": 2 ** 32}),
    ("TrainerConfig", {"validation_steps": 0}), ("TransEConfig", {"epochs": 0}),
    ("TransEConfig", {"embedding_dim": 0}), ("PretrainingTaskConfig", {"eval_fraction": 0}),
    ("PretrainingTaskConfig", {"eval_fraction": 1}), ("PretrainingTaskConfig", {"max_documents": 0}),
    ("ClassificationTaskConfig", {"calibration_fraction": 1}), ("ClassificationTaskConfig", {"dropout": 1}),
    ("RetrievalTaskConfig", {"temperature": 0}), ("RecipeConfig", {"finetune_kd_weight": 0}),
    ("GopherRepetitionConfig", {"max_duplicate_line_fraction": 1.5}), ("RefineConfig", {"language_threshold": 2}),
    ("PipelineConfig", {"accuracy_lower_bound": 1.1}), ("EncoderConfig", {"layer_norm_epsilon": 0}),
    ("MinHashConfig", {"bands": 1000, "rows": 66}),
])
def test_out_of_range_values_are_refused(cls, values):
    cls = next(c for c in CLASSES if c.__name__ == cls)
    with pytest.raises(ValueError, match="must be"):
        cls(**{**_required(cls), **values})


@pytest.mark.parametrize("cls, values", [
    ("TrainerConfig", {"learning_rate": 1.5, "clipnorm": 0, "warmup_steps": 0, "weight_decay": 0, "seed": 0}),
    ("ClassificationTaskConfig", {"calibration_fraction": 0, "dropout": 0}),
    ("PretrainingTaskConfig", {"nsp_weight": 0, "sop_weight": 0, "nce_weight": 0}),
    ("SentenceEmbeddingTaskConfig", {"projection_dim": 0}), ("PipelineConfig", {"kd_weight": 0, "seed": 0}),
    ("GopherQualityConfig", {"min_words": 0, "min_stop_words": 0}), ("RefineConfig", {"language_threshold": 0}),
])
def test_zero_where_it_means_off_is_accepted(cls, values):
    cls = next(c for c in CLASSES if c.__name__ == cls)
    config = cls(**{**_required(cls), **values})
    assert all(getattr(config, k) == v for k, v in values.items())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_sizes_that_become_padding_int32_fields_or_processes_have_upper_bounds(cls):
    """A pipeline config of max_sequence_length 10**9 passed every check (the Transform pads every
    example to it); steps past 2**31 - 1 failed in TFX's protobuf with a bare "Value out of range"."""
    base = _required(cls)
    for name in _number_fields(cls, cls(**base)):
        high = next((high for parts, high, _ in SIZE_BOUNDS if any(part in name for part in parts)), None)
        if high is not None:
            with pytest.raises(ValueError, match=rf"{cls.__name__}\.{name} must be .* at most {high:,} "):
                cls(**{**base, name: high + 1})


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_integers_beyond_int64_are_refused_naming_the_field(cls):
    """``--num-classes 2**63`` passed every check and ended in NumPy's OverflowError (exit 1);
    ``--eval-batches 2**63`` in TensorFlow's "out-of-range integer"."""
    base = _required(cls)
    integers = [f.name for f in dataclasses.fields(cls) if str(f.type) in ("int", "Optional[int]")]
    for name in integers:
        with pytest.raises(ValueError, match=rf"{cls.__name__}\.{name} must be .*, got ({2**63}|{2**63:,})$"):
            cls(**{**base, name: 2**63})
    if integers:   # the largest int64 is a number like any other where no tighter bound applies
        unbounded = [n for n in integers if not any(p in n for parts, _, _ in SIZE_BOUNDS for p in parts)
                     and n not in ("seed", "port") and not n.endswith(("_port", "timeout", "_seconds"))]
        for name in unbounded:
            try:
                cls(**{**base, name: 2**63 - 1})
            except ValueError as err:   # a check of the class's own (doc_stride < sequence length)
                assert "at most 9,223,372,036,854,775,807" not in str(err)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_floats_that_are_zero_or_infinite_as_float32_are_refused(cls):
    """Adam's epsilon of 1e-300 passed "> 0", became 0 in float32 and made NaN of every weight
    whose gradient was 0; 1e39 is infinite in float32."""
    base = _required(cls)
    floats = [f.name for f in dataclasses.fields(cls) if str(f.type) in ("float", "Optional[float]")]
    for name in floats:
        for bad in (1e-300, 1e39, 10**39):
            with pytest.raises(ValueError, match=rf"{cls.__name__}\.{name} must be .*, got "):
                cls(**{**base, name: bad})


def test_a_float_setting_given_as_a_large_integer_is_a_float():
    trainer = next(c for c in CLASSES if c.__name__ == "TrainerConfig")
    assert trainer(clipnorm=2**70).clipnorm == 2**70      # not "at most 2**63 - 1 (an int64)"


def test_the_command_line_refuses_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    # Each of these trained to exit 0 before (a negative rate went uphill).
    assert cli_main(["kg", "train", "--learning-rate", "-0.01", "--output-dir", str(out)]) == 2
    assert "TransEConfig.learning_rate must be > 0, got -0.01" in capsys.readouterr().err
    assert cli_main(["finetune", "--task", "classification", "--weight-decay", "-1", "--output-dir", str(out)]) == 2
    assert "TrainerConfig.weight_decay must be >= 0, got -1.0" in capsys.readouterr().err
    assert cli_main(["finetune", "--task", "classification", "--calibration-fraction", "1.5",
                     "--output-dir", str(out)]) == 2
    assert "ClassificationTaskConfig.calibration_fraction must be in [0, 1), got 1.5" in capsys.readouterr().err
    assert cli_main(["recipe", "--kd-weight", "-0.5", "--output-dir", str(out)]) == 2
    assert "RecipeConfig.kd_weight must be > 0" in capsys.readouterr().err
    assert cli_main(["finetune", "--task", "qa", "--max-sequence-length", str(10**9), "--output-dir", str(out)]) == 2
    assert "QATaskConfig.max_sequence_length must be > 0 and at most 32,768" in capsys.readouterr().err
    assert cli_main(["pretrain", "--epochs", str(10**21), "--output-dir", str(out)]) == 2
    assert "TrainerConfig.epochs must be > 0 and at most 2,147,483,647" in capsys.readouterr().err
    assert cli_main(["finetune", "--task", "classification", "--num-classes", str(2**63), "--output-dir",
                     str(out)]) == 2     # exit 1 before: NumPy's OverflowError
    assert f"ClassificationTaskConfig.num_classes must be at most {2**63 - 1:,}" in capsys.readouterr().err
    assert cli_main(["finetune", "--task", "classification", "--adam-epsilon", "1e-300", "--output-dir",
                     str(out)]) == 2     # before: "loss became nan at step 2 (hint: lower --learning-rate ...)"
    assert "TrainerConfig.adam_epsilon must be > 0, got 1e-300: that is 0.0 as a float32" in capsys.readouterr().err
    assert cli_main(["pretrain", "--eval-batches", str(2**63), "--output-dir", str(out)]) == 2
    assert "PretrainingTaskConfig.eval_batches must be > 0 and at most 2,147,483,647" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("cls, values, message", [
    ("SentenceEmbeddingTaskConfig", {"pairs_file": "pairs.jsonl"}, "pairs_file is read with mode='supervised' only"),
    ("SentenceEmbeddingTaskConfig", {"mode": "supervised", "corpus_files": ("a.txt",)},
     "corpus_files is read with mode='unsupervised' only"),
    ("ImageTextTaskConfig", {"fusion": "late"}, "fusion is read with objective='matching' only"),
    ("ImageTextTaskConfig", {"fusion_size": 64, "fusion_dropout": 0.2},
     "fusion_size, fusion_dropout are read with objective='matching' only; leave them unset"),
    ("ImageTextTaskConfig", {"objective": "matching", "fusion": "late", "fusion_dropout": 0.2},
     "fusion_dropout is read with fusion='cross_attention' only"),
    ("ImageTextTaskConfig", {"image_encoder": "cnn", "image_preset": "small"},
     "image_preset is read with image_encoder='vit' only"),
    ("PretrainingTaskConfig", {"corpus": "nations", "corpus_files": ("a.txt",)}, "corpus 'nations' would be ignored"),
    ("PretrainingTaskConfig", {"nce_temperature": 0.1}, "nce_temperature is read with nce_weight > 0 only"),
    ("PretrainingTaskConfig", {"nsp_weight": 0.0, "sop_weight": 0.0, "pair_representation": "cls_pooler"},
     "pair_representation is read with nsp_weight or sop_weight > 0 only"),
    ("ClassificationTaskConfig", {"train_file": "t.jsonl", "eval_file": "e.jsonl", "max_examples_per_class": 10},
     "max_examples_per_class is read with the built-in data (no train_file) only"),
    ("ClassificationTaskConfig", {"max_examples": 10}, "max_examples is read with the built-in multi-label data only"),
    ("ClassificationTaskConfig", {"multi_label": True, "max_examples_per_class": 10},
     "max_examples_per_class is read with the built-in single-label data only"),
    ("ClassificationTaskConfig", {"eval_file": "e.jsonl"}, "eval_file (--eval) is read with train_file (--train) only"),
    ("QATaskConfig", {"eval_file": "e.jsonl"}, "eval_file (--eval) is read with train_file (--train) only"),
    ("RetrievalTaskConfig", {"pairs_file": "p.jsonl", "max_pairs": 10}, "max_pairs is read with the built-in pairs"),
    ("TrainerConfig", {"tpu": "local"}, "tpu is read with strategy='tpu' only"),
    ("TrainerConfig", {"keep_epoch_checkpoints": False, "max_epoch_checkpoints": 2},
     "max_epoch_checkpoints is read with keep_epoch_checkpoints only"),
    ("TransEConfig", {"dataset": "nations", "train_file": "t.tsv"}, "train_file is read without dataset only"),
    ("RunnerConfig", {"dask_address": "tcp://10.0.0.2:8786"}, "dask_address is read with runner='dask' only"),
    ("RunnerConfig", {"runner": "beam", "workers": 8}, "workers is read with runner='direct' or a local dask"),
    ("RunnerConfig", {"runner": "dask", "dask_address": "tcp://10.0.0.2:8786", "workers": 8}, "workers is read"),
])
def test_settings_that_the_other_settings_leave_unread_are_refused(cls, values, message):
    """Before, each trained without a word on something else (``--pairs`` with the default
    unsupervised mode trained SimCSE on the corpus and never opened the file)."""
    config_class = {c.__name__: c for c in _config_classes()}[cls]
    with pytest.raises(ValueError, match=re.escape(message)):
        config_class(**values)
    kept = {"SentenceEmbeddingTaskConfig": [{"mode": "supervised", "pairs_file": "p.jsonl"},
                                            {"corpus_files": ("a.txt",)}],
            "ImageTextTaskConfig": [{"objective": "matching", "fusion": "late", "fusion_size": 64},
                                    {"objective": "matching", "fusion_dropout": 0.2}, {"image_encoder": "cnn"}],
            "PretrainingTaskConfig": [{"corpus_files": ("a.txt",)}, {"corpus": "nations"},
                                      {"nce_weight": 0.5, "nce_temperature": 0.1},
                                      {"sop_weight": 0.0, "pair_representation": "cls_pooler"}],
            "ClassificationTaskConfig": [{"max_examples_per_class": 10}, {"multi_label": True, "max_examples": 10},
                                         {"kd_teacher": "t", "kd_temperature": 4.0}],
            "QATaskConfig": [{"train_file": "t.jsonl", "eval_file": "e.jsonl"}],
            "RetrievalTaskConfig": [{"pairs_file": "p.jsonl"}, {"max_pairs": 10}],
            "TrainerConfig": [{"strategy": "tpu", "tpu": "local"}, {"keep_epoch_checkpoints": False}],
            "TransEConfig": [{"dataset": "nations"}, {"train_file": "t.tsv", "test_file": "e.tsv"}],
            "RunnerConfig": [{"runner": "dask", "dask_address": "tcp://10.0.0.2:8786"},
                             {"runner": "dask", "workers": 8}, {"workers": 8},
                             {"runner": "beam", "pipeline_args": ("--runner=FlinkRunner",)}]}[cls]
    for values in kept:
        config_class(**values)


def test_options_the_task_would_not_read_are_refused_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["finetune", "--task", "sentence_embedding", "--pairs", "p.jsonl", "--output-dir", str(out)]) == 2
    assert "pairs_file is read with mode='supervised' only" in capsys.readouterr().err
    (tmp_path / "items.jsonl").write_text('{"item": "a", "text": "t"}\n')
    assert cli_main(["finetune", "--task", "recommendation", "--items", str(tmp_path / "items.jsonl"),
                     "--output-dir", str(out)]) == 2
    assert "items_file needs interactions_file (the histories of your users)" in capsys.readouterr().err
    # Settings that only a pipeline's Trainer, or a run without init_from or vocab_file, reads.
    (tmp_path / "v.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nword\n")
    for argv, words in ((["finetune", "--task", "classification", "--preset", "base"], "preset is read by a pipeline"),
                        (["pretrain", "--init-from", str(tmp_path), "--preset", "small"],
                         "preset is read without init_from (it brings its architecture and vocabulary)"),
                        (["pretrain", "--vocab-file", str(tmp_path / "v.txt"), "--vocab-size", "100"],
                         "vocab_size is read when the vocabulary is learned (no vocab_file) only"),
                        (["pretrain", "--kd-weight", "0.9"], "kd_weight is read with kd_teacher only"),
                        (["finetune", "--task", "classification", "--kd-temperature", "4"],
                         "kd_temperature is read with kd_teacher only")):
        assert cli_main([*argv, "--output-dir", str(out)]) == 2, argv
        assert words in capsys.readouterr().err, argv
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("cls, values, message", [
    ("RecipeConfig", {"seeds": (0, 1, 0)}, r"RecipeConfig.seeds repeats \[0\]"),
    ("RecipeConfig", {"seeds": (1, -1)}, r"RecipeConfig.seeds\[1\] must be in \[0, 2\*\*32 - 1\], got -1"),
    ("RecipeConfig", {"seeds": (2 ** 32,)}, r"RecipeConfig.seeds\[0\] must be in"),
    ("PretrainingTaskConfig", {"knowledge_layers": (0, 0)}, "knowledge_layers repeats"),
    ("PretrainingTaskConfig", {"knowledge_layers": (-1,)}, r"knowledge_layers\[0\] must be >= 0"),
    ("PretrainingTaskConfig", {"preset": "tiny", "knowledge_layers": (2,)}, r"blocks of the 'tiny' encoder"),
    ("PretrainingTaskConfig", {"knowledge_layers": ()}, "at least one"),
    ("PipelineConfig", {"knowledge_layers": [1, 1]}, "knowledge_layers repeats"),
    ("PipelineConfig", {"knowledge_layers": []}, "at least one"),
])
def test_lists_of_numbers_are_checked_number_by_number_and_name_each_once(cls, values, message):
    """`rw-tf recipe --seeds 0 0` ran seed 0 once and counted it twice in the table's mean and
    spread; `--knowledge-layers 0 0` fused twice after block 0 under one weight name, and an empty
    list trained "knowledge mode" with no knowledge; a negative seed failed only after the recipe had
    trained its knowledge graph."""
    cls = next(c for c in CLASSES if c.__name__ == cls)
    with pytest.raises(ValueError, match=message):
        cls(**{**_required(cls), **values})
    assert next(c for c in CLASSES if c.__name__ == "RecipeConfig")(seeds=(2, 0, 1)).seeds == (2, 0, 1)


@pytest.mark.parametrize("layers, message", [((0, 0), r"knowledge_layers repeats \[0\]: give each once"),
                                             ((), "must name blocks of this encoder, each once"),
                                             ((2,), "must name blocks of this encoder, each once")])
def test_the_knowledge_encoder_fuses_after_each_named_block_once(layers, message):
    with pytest.raises(ValueError, match=message):
        KnowledgeEnhancedEncoder(50, 7, 8, knowledge_layers=layers, hidden_size=16, num_layers=2, num_heads=2,
                                 intermediate_size=32, max_sequence_length=16)


# Valid arguments of every Keras layer, model and loss rw_tf registers (a new class must join).
ENCODER = dict(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
               max_sequence_length=16)
KERAS_CLASSES = {
    "AdditiveKnowledgeFusion": lambda: dict(hidden_size=8),
    "GatedKnowledgeFusion": lambda: dict(hidden_size=8),
    "CrossAttentionBlock": lambda: dict(hidden_size=16, num_heads=2, intermediate_size=32),
    "TransformerEmbeddings": lambda: dict(vocab_size=50, hidden_size=8, max_sequence_length=16),
    "TransformerEncoderBlock": lambda: dict(hidden_size=16, num_heads=2, intermediate_size=32),
    "TransformerEncoder": lambda: dict(ENCODER),
    "KnowledgeEnhancedEncoder": lambda: dict(ENCODER, num_entities=10, entity_embedding_dim=8),
    "ViTImageEncoder": lambda: dict(image_size=32, patch_size=8, hidden_size=16, num_layers=1, num_heads=2,
                                    intermediate_size=32),
    "ConvImageEncoder": lambda: dict(image_size=32, filters=8, num_stages=2, hidden_size=16),
    "MaskedLMHead": lambda: dict(token_embedding=keras.layers.Embedding(50, 16)),
    "SegmentPairHead": lambda: {},
    "SpanHead": lambda: {},
    "PretrainingModel": lambda: dict(encoder=rw_tf.TransformerEncoder(**ENCODER)),
    "TextClassifier": lambda: dict(encoder=rw_tf.TransformerEncoder(**ENCODER)),
    "SpanQuestionAnswerer": lambda: dict(encoder=rw_tf.TransformerEncoder(**ENCODER)),
    "DualEncoder": lambda: dict(query_encoder=rw_tf.TransformerEncoder(**ENCODER)),
    "SentenceEncoder": lambda: dict(encoder=rw_tf.TransformerEncoder(**ENCODER)),
    "TwoTowerRecommender": lambda: dict(num_items=10, text_dim=8),
    "TransE": lambda: dict(num_entities=5, num_relations=2),
    "ImageTextModel": lambda: dict(image_encoder=ConvImageEncoder(image_size=32, filters=8, hidden_size=16),
                                   text_encoder=rw_tf.TransformerEncoder(**ENCODER), projection_dim=8, fusion_size=16,
                                   fusion_heads=2),
    "ImageTextMatcher": lambda: dict(backbone=ImageTextModel(**KERAS_CLASSES["ImageTextModel"]())),
    "KnowledgeDistillationLoss": lambda: {},
    "InfoNCELoss": lambda: {},
    "MaskedLMLoss": lambda: {},
    "BinaryLogitLoss": lambda: {},
}


def _registered_keras_classes():
    return {key.split(">")[1]: cls for key, cls in keras.saving.get_custom_objects().items()
            if key.startswith("rw_tf>") and issubclass(cls, (keras.layers.Layer, keras.losses.Loss))}


def test_every_registered_keras_class_has_valid_arguments_here():
    assert set(_registered_keras_classes()) == set(KERAS_CLASSES)


@pytest.mark.parametrize("name", sorted(KERAS_CLASSES))
def test_keras_classes_refuse_number_arguments_out_of_range_or_of_the_wrong_type(name):
    """Layers, models and losses took any number: TransformerEmbeddings(hidden_size=-1) failed
    in build, TransE(embedding_dim=0) with a ZeroDivisionError, and PretrainingModel(nsp_weight=-1),
    MaskedLMHead(layer_norm_epsilon=-1) or InfoNCELoss(temperature=nan) trained the wrong way
    without a word. Every number argument is now checked as the configs' numbers are."""
    cls = _registered_keras_classes()[name]
    valid = KERAS_CLASSES[name]()
    cls(**valid)
    hints = {n: p.annotation for n, p in inspect.signature(cls.__init__).parameters.items()}
    numbers = [n for n, hint in hints.items() if hint in ("int", "float", "Optional[int]", "Sequence[int]")]
    assert numbers or name in ("SpanQuestionAnswerer", "MaskedLMLoss", "BinaryLogitLoss")
    for number in numbers:
        is_int = "int" in hints[number]
        bad_values = [-1, math.nan, math.inf, True, "3"] + ([2.5, 2**63] if is_int else [1e-300, 1e39])
        if hints[number] == "Sequence[int]":
            bad_values = [(-1,), (0.5,), 3, ("0",), (2**63,)]
        for bad in bad_values:
            with pytest.raises((ValueError, TypeError), match=rf"^{name}\.{number}(\[0\])? must be"):
                cls(**{**KERAS_CLASSES[name](), number: bad})


@pytest.mark.parametrize("name, values", [
    ("PretrainingModel", dict(nsp_weight=0, sop_weight=0, kd_weight=0, nce_weight=0)),
    ("TextClassifier", dict(kd_weight=0, dropout=0)), ("SentenceEncoder", dict(projection_dim=0)),
    ("TwoTowerRecommender", dict(profile_dim=0)), ("TransE", dict(seed=0)), ("TransE", dict(seed=None)),
    ("ImageTextMatcher", dict(alignment_weight=0)), ("TransformerEncoder", dict(dropout=0, attention_dropout=0)),
    ("KnowledgeEnhancedEncoder", dict(knowledge_layers=[0])), ("TransE", dict(num_entities=np.int64(5))),
    ("InfoNCELoss", dict(temperature=np.float32(0.1))),
])
def test_keras_classes_take_zero_where_it_means_off_and_numpy_numbers(name, values):
    made = _registered_keras_classes()[name](**{**KERAS_CLASSES[name](), **values})
    config = made.get_config()
    assert all(config[k] == v or list(config[k]) == list(v) for k, v in values.items()
               if not isinstance(v, (np.generic, type(None))))


def _export_and_function_calls():
    from rw_tf.applications.fill_mask import fill_mask, masked_span_suggestions
    from rw_tf.applications.question_answering import QuestionAnswerer
    from rw_tf.checkpoints.pretrained import pretrained_encoder
    from rw_tf.data.images import check_image
    from rw_tf.data.qa_windows import WindowSpec
    from rw_tf.export.classification import classifier_outputs
    from rw_tf.export.image_text import ImageTextExport
    from rw_tf.export.question_answering import QuestionAnsweringExport
    from rw_tf.export.recommendation import RecommenderExport
    from rw_tf.knowledge.evaluation import filtered_ranks, rank_metrics
    from rw_tf.refine.pipeline import RefineWeb
    from rw_tf.tasks.sentence_embedding import embed_texts
    from rw_tf.training.backup import TrainingBackup
    from rw_tf.training.optimizer import build_optimizer
    from rw_tf_pipeline.configs import PipelineConfig

    # Each was accepted before (the exports with any model: the check comes first), except the
    # first, which recursed until Python's limit (RecursionError), and WindowSpec's max_windows 1.5.
    return [
        (lambda: rw_tf.learn_vocabulary(["a b c"] * 4, min_count=math.nan), TypeError,
         "learn_vocabulary.min_count must be an integer, got nan"),
        (lambda: rw_tf.learn_vocabulary(["a b c"] * 4, vocab_size=50, min_count=-1), ValueError,
         "learn_vocabulary.min_count must be > 0, got -1"),
        (lambda: rw_tf.create_strategy(worker_timeout_seconds=-1.0), ValueError,
         "create_strategy.worker_timeout_seconds must be > 0 and at most 86,400 (seconds, a day"),
        (lambda: rw_tf.ClassifierExport(None, None, 16, temperature=-1.0), ValueError,
         "ClassifierExport.temperature must be > 0, got -1.0"),
        (lambda: rw_tf.ClassifierExport(None, None, 16, temperature=math.nan), ValueError,
         "ClassifierExport.temperature must be > 0, got nan"),
        (lambda: rw_tf.SentenceEmbeddingExport(None, None, max_sequence_length=10**6), ValueError,
         "SentenceEmbeddingExport.max_sequence_length must be > 0 and at most 32,768"),
        (lambda: rw_tf.PretrainingExport(None, None, max_sequence_length=2.5), TypeError,
         "PretrainingExport.max_sequence_length must be an integer, got 2.5"),
        (lambda: rw_tf.RetrievalExport(None, None, ["a"], np.zeros((1, 4)), 16, top_k=0), ValueError,
         "RetrievalExport.top_k must be > 0, got 0"),
        (lambda: RecommenderExport(None, None, ["a"], top_k=-3), ValueError, "RecommenderExport.top_k must be > 0"),
        (lambda: QuestionAnsweringExport(None, None, WindowSpec(), max_answer_length=0), ValueError,
         "QuestionAnsweringExport.max_answer_length must be > 0 and at most 32,768"),
        (lambda: ImageTextExport(None, None, 16, image_size=10**5), ValueError,
         "ImageTextExport.image_size must be > 0 and at most 4,096"),
        (lambda: WindowSpec(max_windows=1.5), TypeError, "WindowSpec.max_windows must be an integer, got 1.5"),
        # The qa pipeline kind pads every question to max_windows windows: 10**6 of them was a
        # Transform that asked for gigabytes per example.
        (lambda: PipelineConfig(qa_max_windows=10**6), ValueError,
         "PipelineConfig.qa_max_windows must be > 0 and at most 1,024"),
        (lambda: PipelineConfig(qa_max_windows=1_000, qa_max_sequence_length=512), ValueError,
         "qa_max_windows): max_windows x max_sequence_length is 512,000 tokens, at most 65,536"),
        (lambda: PipelineConfig(qa_doc_stride=200), ValueError,
         "qa_max_windows): doc_stride must be in [1, 101]"),
        (lambda: QuestionAnswerer(None, None, WindowSpec(), batch_size=0), ValueError,
         "QuestionAnswerer.batch_size must be > 0, got 0"),
        (lambda: fill_mask(None, None, ["a [MASK]"], top_k=-1), ValueError, "fill_mask.top_k must be > 0, got -1"),
        (lambda: masked_span_suggestions(None, None, "a [MASK]", max_masks=0), ValueError,
         "masked_span_suggestions.max_masks must be > 0, got 0"),
        # Accepted before: an optimizer whose learning rate is NaN, whose schedule ran over -5 steps
        # (clamped to 1 without a word) or whose epsilon of 0 divides by zero on a zero gradient;
        # probabilities inverted by a negative temperature or NaN at 0; a hits@0 that is always 0.
        (lambda: build_optimizer(learning_rate=math.nan, total_steps=10), ValueError,
         "build_optimizer.learning_rate must be > 0, got nan"),
        (lambda: build_optimizer(learning_rate=1e-3, total_steps=10, epsilon=1e-300), ValueError,
         "build_optimizer.epsilon must be > 0, got 1e-300: that is 0.0 as a float32"),
        (lambda: build_optimizer(learning_rate=1e-3, total_steps=-5), ValueError,
         "build_optimizer.total_steps must be > 0 and at most 2,147,483,647"),
        (lambda: build_optimizer(learning_rate=1e-3, total_steps=10, epsilon=0.0), ValueError,
         "build_optimizer.epsilon must be > 0, got 0.0"),
        (lambda: build_optimizer(learning_rate=1e-3, total_steps=10, clipnorm=-1.0), ValueError,
         "build_optimizer.clipnorm must be >= 0, got -1.0"),
        (lambda: classifier_outputs(np.zeros((1, 2), "float32"), temperature=-1.0), ValueError,
         "classifier_outputs.temperature must be > 0, got -1.0"),
        (lambda: rank_metrics(np.array([1.0, 2.0]), ks=(0, 3)), ValueError, "rank_metrics.ks[0] must be > 0, got 0"),
        (lambda: rank_metrics(np.array([1.0, 2.0]), ks=(1.5,)), TypeError,
         "rank_metrics.ks must be a list of integers, got (1.5,)"),
        (lambda: filtered_ranks(None, np.zeros((1, 3), "int64"), [], batch_size=0), ValueError,
         "filtered_ranks.batch_size must be > 0, got 0"),
        (lambda: RefineWeb(["pages.warc"], input_groups=0), ValueError, "RefineWeb.input_groups must be > 0, got 0"),
        (lambda: TrainingBackup("unused", every_steps=2.5), TypeError,
         "TrainingBackup.every_steps must be an integer, got 2.5"),
        (lambda: pretrained_encoder("unused", dropout=1.0), ValueError,
         "pretrained_encoder.dropout must be in [0, 1), got 1.0"),
        (lambda: check_image(b"", max_pixels=0), ValueError, "check_image.max_pixels must be > 0, got 0"),
        (lambda: embed_texts(None, None, ["a"], max_sequence_length=10**6), ValueError,
         "embed_texts.max_sequence_length must be > 0 and at most 32,768"),
    ]


EXPORT_AND_FUNCTION_CALLS = _export_and_function_calls()


@pytest.mark.parametrize("call, error, words", EXPORT_AND_FUNCTION_CALLS,
                         ids=[words.split(" ")[0] for _, _, words in EXPORT_AND_FUNCTION_CALLS])
def test_export_modules_and_api_functions_refuse_bad_numbers_before_any_work(call, error, words):
    with pytest.raises(error) as raised:
        call()
    assert words in str(raised.value)


def test_a_pipeline_trainer_may_set_distillation_before_its_teacher_arrives(tmp_path):
    """The domain kind's contracts carry kd_weight and kd_temperature; the teacher reaches the Trainer
    later (its teacher_model input), so the configs must not refuse them unread."""
    from rw_tf_pipeline.configs import PipelineConfig

    config = PipelineConfig(root=str(tmp_path), kd_weight=0.3, refined_kd_weight=0.2, kd_temperature=3.0)
    assert config.domain_trainer_contract("domain").task_config.kd_weight == 0.3
    assert config.domain_trainer_contract("refined").task_config.kd_temperature == 3.0
