"""TFX pipelines: one end-to-end LocalDagRunner run (shared), gates, anomalies, Kubeflow compile."""
import json
import os
import shutil
import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from conftest import TINY_PIPELINE as TINY

from rw_tf.data.jsonl import example_from_json
from rw_tf.data.splits import text_key
from rw_tf_pipeline.components.anomalies_gate import DataAnomaliesError
from rw_tf_pipeline.components.jsonl_example_gen import _JsonlToExample
from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.local_runner import run_pipeline
from rw_tf_pipeline.mlmd_queries import open_store, pipeline_artifacts
from rw_tf_pipeline.prepare import data_paths, inputs_state, prepare_kind_data, rows_rejected


@pytest.fixture(scope="module")
def e2e(pipeline_run):
    return pipeline_run


def test_end_to_end_blessed_pushed_and_servable(e2e):
    config, summaries = e2e
    for kind in ("pretrain", "finetune"):
        assert summaries[kind]["blessed"] and summaries[kind]["pushed"], summaries
        assert len(summaries[kind]["versions_in_serving_dir"]) == 1
    # Load the pushed models with TensorFlow + tensorflow_text only (no rw_tf code).
    script = (
        "import sys, json, tensorflow as tf, tensorflow_text\n"
        "pt = tf.saved_model.load(sys.argv[1]); ft = tf.saved_model.load(sys.argv[2])\n"
        "e = pt.signatures['encode_text'](text=tf.constant(['Lists are mutable sequences.']))\n"
        "c = ft.signatures['classify_text'](text=tf.constant(['The while statement repeats a suite.',\n"
        "                                                     'Return a copy of the string.']))\n"
        "f = pt.signatures['fill_mask'](text=tf.constant(['The [MASK] statement is used to [MASK] a loop.']))\n"
        "print(json.dumps({'dim': int(e['mean_embedding'].shape[1]), 'p': c['probability'].numpy().tolist(),"
        " 'sigs': sorted(ft.signatures), 'masks': int(f['num_masks'][0]), 'k': int(f['tokens'].shape[-1])}))\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", script, summaries["pretrain"]["pushed_destination"],
                           summaries["finetune"]["pushed_destination"]], capture_output=True, text=True,
                          env=env, timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["dim"] == 64
    assert out["sigs"] == ["classification", "classify_text", "serving_default", "transform_features"]
    assert all(0.0 <= p <= 1.0 for p in out["p"])
    assert out["masks"] == 2 and out["k"] == 5          # writing assistant through the pushed model


def test_mlmd_records_lineage(e2e):
    config, _ = e2e
    store = open_store(config.metadata_path)
    models = pipeline_artifacts(store, config.pipeline_name("pretrain"), "Model")
    assert len(models) == 1
    events = store.get_events_by_artifact_ids([models[0].id])
    executions = {e.execution_id: e.type for e in events}
    kinds = {store.get_execution_types_by_id([x.type_id])[0].name.rsplit(".", 1)[-1]: executions[x.id]
             for x in store.get_executions_by_id(list(executions))}
    assert kinds["Trainer"] == events[0].OUTPUT
    assert kinds["Evaluator"] == events[0].INPUT and kinds["Pusher"] == events[0].INPUT
    # The fine-tuning Trainer consumed the pushed pretraining model through the Importer.
    imported = pipeline_artifacts(store, config.pipeline_name("finetune"), "Model")
    assert any(a.uri == e2e[1]["pretrain"]["pushed_destination"] for a in imported)


def test_unreachable_threshold_is_not_blessed_and_not_pushed(e2e):
    config, summaries = e2e
    strict = PipelineConfig(**{**config.to_dict(), "mlm_accuracy_lower_bound": 0.99})
    summary = run_pipeline("pretrain", strict)["pretrain"]   # cached up to Trainer; Evaluator/Pusher re-run
    assert not summary["blessed"] and not summary["pushed"]
    assert summary["versions_in_serving_dir"] == summaries["pretrain"]["versions_in_serving_dir"]
    value = summary["gate"]["masked_lm_accuracy"]["value"]
    assert summary["gate_failures"] == [f"masked_lm_accuracy {value:.4f} is under its lower bound 0.99"]


def test_checked_in_schema_matches_inferred_schema(e2e):
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    config, _ = e2e
    for kind in ("pretrain", "finetune"):
        stats_dirs = os.path.join(config.pipeline_root(kind), "StatisticsGen", "statistics")
        latest = os.path.join(stats_dirs, max(os.listdir(stats_dirs), key=int), "Split-train", "FeatureStats.pb")
        inferred = tfdv.infer_schema(tfdv.load_stats_binary(latest))
        checked_in = text_format.Parse(open(f"schemas/{kind}/schema.pbtxt").read(), schema_pb2.Schema())
        assert {(f.name, f.type) for f in inferred.feature} == {(f.name, f.type) for f in checked_in.feature}
        assert not tfdv.validate_statistics(tfdv.load_stats_binary(latest), checked_in).anomaly_info


def test_schema_anomaly_stops_run_before_transform(e2e, tmp_path):
    config = PipelineConfig(root=str(tmp_path), **TINY)
    shutil.copytree(e2e[0].data_dir, config.data_dir)     # the run's prepared data (preparing takes ~50 s)
    paths = data_paths(config)
    for split in ("finetune/train", "finetune/eval"):
        rows = [json.loads(line) for line in open(paths[split], encoding="utf-8")][:150]
        with open(paths[split], "w", encoding="utf-8") as f:
            for row in rows:   # "label" renamed: the schema requires it
                f.write(json.dumps({"text": row["text"], "labl": row["label"]}) + "\n")
    with pytest.raises(DataAnomaliesError, match="'label'"):
        run_pipeline("finetune", config)
    assert not os.path.exists(os.path.join(config.pipeline_root("finetune"), "Transform"))


def test_jsonl_reader_counts_rejected_lines(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "ok", "label": 0}\nnot json\n[1, 2]\n'
                                       b'{"text": "\xff bad utf8"}\n{"x": [1, "a"]}\n\n{"text": "", "label": 1}\n'
                                       b'{"image": {"b64": "not base64!"}, "label": 2}\n'
                                       b'{"image": {"b64": "iVBORw0KGgo="}, "label": 3}\n'
                                       b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b', "label": 4}\n'
                                       b'{"text": "lone \\ud800", "label": 5}\n')
    pipeline = beam.Pipeline()
    examples = pipeline | _JsonlToExample({"input_base": str(tmp_path)}, "*.jsonl")
    labels = examples | beam.Map(lambda e: e.features.feature["label"].int64_list.value[0])
    assert_that(labels, equal_to([0, 1, 3]))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]}
    assert counters == {"rejected_lines": 7, "examples": 3}
    assert example_from_json({"n": 0, "s": ""}).features.feature["n"].int64_list.value == [0]
    # Binary values (images) travel as {"b64": ...}, TF Serving's REST convention: the bytes are kept.
    png = example_from_json({"image": {"b64": "iVBORw0KGgo="}}).features.feature["image"].bytes_list.value
    assert png == [b"\x89PNG\r\n\x1a\n"]




def test_prepared_splits_do_not_leak(e2e):
    paths = data_paths(e2e[0])            # the splits the end-to-end run trained and evaluated on
    read = lambda key: [json.loads(line) for line in open(paths[key], encoding="utf-8")]
    train, evaluation = read("pretrain/train"), read("pretrain/eval")
    train_segments = {row[k] for row in train for k in ("text_a", "text_b", "text_random")}
    eval_segments = {row[k] for row in evaluation for k in ("text_a", "text_b")}
    assert evaluation and not (eval_segments & train_segments)
    report = json.load(open(paths["report"]))
    assert report["removed"]["duplicate_sentences"] > 0 and report["eval_pairs"] == len(evaluation)
    finetune_train = {text_key(r["text"]) for r in read("finetune/train")}
    assert not finetune_train & {text_key(r["text"]) for r in read("finetune/eval")}


def test_embedding_splits_do_not_leak(tmp_path):
    config = PipelineConfig(root=str(tmp_path), **TINY)
    paths = prepare_kind_data(config, "embedding")
    assert sorted(paths) == ["embedding/eval", "embedding/train", "report"]
    read = lambda key: [json.loads(line) for line in open(paths[key], encoding="utf-8")]
    embedding_train = {text_key(r[k]) for r in read("embedding/train") for k in ("query", "item")}
    assert not embedding_train & {text_key(r[k]) for r in read("embedding/eval") for k in ("query", "item")}
    report = json.load(open(paths["report"]))
    assert report["embedding_rows_rejected"]["eval_text_in_train"] > 0   # docstrings repeated across modules


def test_local_runs_leave_no_tfx_packages_in_the_temp_dir():
    """Every Beam-based TFX executor builds a ~40 MB source package of TFX in the temp dir and never
    deletes it; the local runner scopes the temp dir to the run."""
    import tempfile

    from tfx.utils import dependency_utils

    from rw_tf_pipeline.local_runner import scratch_tempdir

    outside = tempfile.gettempdir()
    with scratch_tempdir() as scratch:
        package = dependency_utils.build_ephemeral_package()
        assert package.startswith(scratch + os.sep) and os.path.exists(package)
        assert os.environ["TMPDIR"] == scratch
    assert not os.path.exists(scratch) and tempfile.gettempdir() == outside


def test_pipeline_prepare_kind_qa_writes_windowable_questions_and_counts_the_rest(tmp_path, capsys):
    # `pipeline prepare --kind` was read by nothing (every kind got the main job's data); the qa
    # kind's questions are filtered by its window geometry, whose change rewrites them.
    from rw_tf.cli.main import main

    settings = tmp_path / "qa.json"
    settings.write_text(json.dumps({"qa_max_windows": 3}))
    assert main(["pipeline", "prepare", "--kind", "qa", "--config", str(settings), "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    data = tmp_path / "data"
    assert f"qa/train               {data}/qa/train/examples.jsonl" in out and not (data / "vocab.txt").exists()
    read = lambda split: [json.loads(line) for line in open(data / "qa" / split / "examples.jsonl", encoding="utf-8")]
    train, evaluation = read("train"), read("eval")
    report = json.loads((data / "qa" / "qa_report.json").read_text())
    assert (report["qa_train"], report["qa_eval"]) == (len(train), len(evaluation))
    assert report["qa_train_rejected"]["context_too_long"] > 100       # 3 windows of 128 tokens hold few contexts
    assert {r["context"] for r in train}.isdisjoint(r["context"] for r in evaluation)
    assert all(set(r) == {"question", "context", "answer", "answer_start"} for r in train + evaluation)
    assert all(r["context"][r["answer_start"]:].startswith(r["answer"]) for r in train + evaluation)

    settings.write_text(json.dumps({"qa_max_windows": 10}))
    assert main(["pipeline", "prepare", "--kind", "qa", "--config", str(settings), "--root", str(tmp_path)]) == 0
    assert len(read("train")) > len(train) and json.loads((data / "qa" / "qa_report.json").read_text())[
        "settings"]["max_windows"] == 10


def test_pipeline_prepare_kind_qa_reads_the_users_files_and_counts_bad_rows(tmp_path, capsys):
    # qa_train_file/qa_eval_file replace the glossary set: good rows are written, bad ones counted
    # by reason (never a Transform failure later), an eval context seen in training is removed, and
    # an edited file is new data.
    from rw_tf.cli.main import main

    def row(i, context=None):
        context = context or f"The river number {i} flows north through the valley of town {i}."
        return json.dumps({"question": f"Where does river {i} flow?", "context": context, "answer": "north"})

    train, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_bytes("\n".join(row(i) for i in range(6)).encode() + b'\n{"question": \n\xff\xfe\n'
                      + json.dumps({"question": "Q?", "context": "no answer here", "answer": "north"}).encode())
    shared = "The river number 0 flows north through the valley of town 0."
    evaluation.write_text("\n".join([row(10), row(11), row(12, context=shared),
                                     json.dumps({"question": "Q?", "context": "a b", "answer": "b", "answer_start": 0}),
                                     row(13, context="word " * 2000 + "north")]))
    settings = tmp_path / "qa.json"
    settings.write_text(json.dumps({"qa_train_file": str(train), "qa_eval_file": str(evaluation), "qa_max_windows": 3}))
    assert main(["pipeline", "prepare", "--kind", "qa", "--config", str(settings), "--root", str(tmp_path)]) == 0
    data = tmp_path / "data" / "qa"
    read = lambda split: [json.loads(line) for line in open(data / split / "examples.jsonl", encoding="utf-8")]
    assert [r["question"] for r in read("train")] == [f"Where does river {i} flow?" for i in range(6)]
    assert [r["question"] for r in read("eval")] == ["Where does river 10 flow?", "Where does river 11 flow?"]
    assert all(r["context"][r["answer_start"]:].startswith("north") for r in read("train") + read("eval"))
    report = json.loads((data / "qa_report.json").read_text())
    assert report["qa_rows_rejected"] == {"invalid_json": 1, "invalid_utf8": 1, "answer_not_in_context": 1,
                                          "answer_start_mismatch": 1, "eval_text_in_train": 1, "context_too_long": 1}
    assert report["qa_eval_rejected"] == {"context_too_long": 1} and report["qa_train_rejected"] == {}
    assert rows_rejected(PipelineConfig(root=str(tmp_path)), "qa") == (report["qa_rows_rejected"],
                                                                        str(data / "qa_report.json"))

    evaluation.write_text("\n".join([row(10), row(14)]))      # same path, new content: prepared again
    assert main(["pipeline", "prepare", "--kind", "qa", "--config", str(settings), "--root", str(tmp_path)]) == 0
    assert [r["question"] for r in read("eval")] == ["Where does river 10 flow?", "Where does river 14 flow?"]

    capsys.readouterr()
    for bad, reason in (({"qa_train_file": str(train)}, "needs both qa_train_file and qa_eval_file"),
                        ({"qa_train_file": str(train), "qa_eval_file": str(tmp_path / "nope.jsonl")}, "is not a file")):
        settings.write_text(json.dumps(bad))
        assert main(["pipeline", "prepare", "--kind", "qa", "--config", str(settings), "--root", str(tmp_path)]) == 2
        assert reason in capsys.readouterr().err


def test_pipeline_prepare_writes_its_kinds_data_rewrites_what_changed_and_reads_the_users_files(tmp_path, capsys):
    # A changed vocab_size, seed or finetune_max_per_class was ignored (the files existed): the run
    # trained on data the config no longer described. Each kind prepares only its own data (the
    # embedding kind refined the web corpus and learned a vocabulary it never reads). Also: the
    # finetune and embedding kinds read the user's files.
    from rw_tf.cli.main import main

    settings, data = tmp_path / "cfg.json", tmp_path / "data"
    prepare = lambda kind, **fields: (
        settings.write_text(json.dumps({"corpus": "embedded", "max_documents": 150, **fields})),
        main(["pipeline", "prepare", "--kind", kind, "--config", str(settings), "--root", str(tmp_path)]))[1]
    count = lambda path: sum(1 for _ in open(data / path, encoding="utf-8"))
    assert prepare("finetune", vocab_size=3000, finetune_max_per_class=50) == 0
    vocab = count("vocab.txt")
    assert count("finetune/train/labelled.jsonl") == 80     # 2 classes x 50, 80 % of them
    assert sorted(os.listdir(data)) == ["data_report.json", "finetune", "pretrain", "vocab.txt"]

    train, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("\n".join([json.dumps({"text": f"passage number {i}", "label": i % 2}) for i in range(8)]
                               + ['{"text": "no label"}', '{"text": "x", "label": true}', "not json"]))
    evaluation.write_text("\n".join(json.dumps({"text": t, "label": 1}) for t in ("held out", "passage number 3")))
    assert prepare("finetune", vocab_size=1500, finetune_train_file=str(train), finetune_eval_file=str(evaluation)) == 0
    assert count("vocab.txt") < vocab - 1000
    rows = lambda split: [json.loads(line) for line in open(data / "finetune" / split / "labelled.jsonl")]
    assert rows("train") == [{"text": f"passage number {i}", "label": i % 2} for i in range(8)]
    assert rows("eval") == [{"text": "held out", "label": 1}]
    report = json.loads((data / "data_report.json").read_text())
    assert report["finetune_rows_rejected"] == {"invalid_label": 2, "invalid_json": 1, "eval_text_in_train": 1}
    assert report["finetune_settings"]["finetune_eval_file"] == inputs_state([str(evaluation)])

    pairs = tmp_path / "pairs.jsonl"     # the embedding kind's: split by group, bad rows counted
    pairs.write_text("\n".join([json.dumps({"query": f"q{i}", "item": f"item {i}", "group": f"g{i % 5}"})
                                for i in range(10)] + ['{"query": "q", "item": ""}', "[1]"]))
    stamp = os.path.getmtime(data / "vocab.txt")
    assert prepare("embedding", embedding_pairs_file=str(pairs)) == 0
    assert os.path.getmtime(data / "vocab.txt") == stamp and not (data / "multimodal").exists()
    embedding = lambda split: [json.loads(line) for line in open(data / "embedding" / split / "pairs.jsonl")]
    assert sorted(r["query"] for r in embedding("eval")) == ["q0", "q5"]          # group g0
    assert sorted(r["query"] for r in embedding("train")) == sorted(f"q{i}" for i in range(10) if i % 5)
    assert all(r["negative"] != r["item"] for r in embedding("train") + embedding("eval"))
    report = json.loads((data / "data_report.json").read_text())
    assert report["embedding_rows_rejected"] == {"missing_query_or_item": 1, "invalid_json": 1}
    assert report["finetune_rows_rejected"] == {"invalid_label": 2, "invalid_json": 1, "eval_text_in_train": 1}

    capsys.readouterr()
    evaluation.write_text(json.dumps({"text": "three classes", "label": 2}))   # the kind is binary
    assert prepare("finetune", vocab_size=1500, finetune_train_file=str(train), finetune_eval_file=str(evaluation)) == 2
    assert f"the finetune kind's data ({train} and {evaluation}): label 2 is out of range for 2 classes" in (
        capsys.readouterr().err)
    assert prepare("finetune", finetune_train_file=str(train), finetune_eval_file=str(evaluation),
                   finetune_max_per_class=9) == 2
    assert "finetune_max_per_class is read with the built-in" in capsys.readouterr().err
    assert prepare("embedding", embedding_pairs_file=str(pairs), embedding_max_pairs=5) == 2
    assert "embedding_max_pairs is read with the built-in" in capsys.readouterr().err


def test_pipeline_prepare_kind_recommendation_reads_the_users_catalogue_and_histories(tmp_path, capsys):
    from conftest import BAD_COUNTS, BAD_ITEMS, BAD_USERS, write_interactions

    from rw_tf.cli.main import main
    from rw_tf.data.interactions import read_interactions, stdlib_import_interactions

    items, users = write_interactions(stdlib_import_interactions(), tmp_path, BAD_ITEMS, BAD_USERS)
    settings, data = tmp_path / "cfg.json", tmp_path / "data" / "recommendation"
    prepare = lambda **fields: (settings.write_text(json.dumps(fields)), main(
        ["pipeline", "prepare", "--kind", "recommendation", "--config", str(settings), "--root", str(tmp_path)]))[1]
    assert prepare(recommendation_items_file=items, recommendation_interactions_file=users) == 0
    interactions, _ = read_interactions(items, users)
    reference = interactions.leave_one_out(12345)      # the seed, as rw-tf finetune splits them
    read = lambda split: [json.loads(line) for line in open(data / split / "examples.jsonl", encoding="utf-8")]
    name = lambda ids: " ".join(interactions.items[i] for i in ids)
    assert [(r["history"], r["item"]) for r in read("train")] == [(name(h), name([t])) for h, t in reference.examples]
    assert [(r["history"], r["item"]) for r in read("eval")] == [(name(h), name([t])) for h, t in reference.test]
    assert (data / "items.txt").read_text().split() == interactions.items
    left_out = {**BAD_COUNTS, **{k: n for k, n in reference.removed.items() if n}}
    assert rows_rejected(PipelineConfig(root=str(tmp_path)), "recommendation")[0] == left_out
    assert f"recommendation: {sum(left_out.values())} rows left out by PrepareData (" in capsys.readouterr().out

    with open(users, "a") as f:        # an edited file is prepared again
        f.write(json.dumps({"user": "new", "items": ["os", "re", "json", "zipfile"]}) + "\n")
    assert prepare(recommendation_items_file=items, recommendation_interactions_file=users) == 0
    assert {"history": "os re json", "item": "zipfile"} in [{k: r[k] for k in ("history", "item")}
                                                           for r in read("eval")]
    (tmp_path / "none.jsonl").write_text('{"user": "a", "items": ["os"]}\n')
    capsys.readouterr()
    none = str(tmp_path / "none.jsonl")
    assert prepare(recommendation_items_file=items, recommendation_interactions_file=none) == 2
    err = capsys.readouterr().err
    assert (f"the recommendation kind's data ({items} and {none}): no usable users (train rows 0, eval rows 0; "
            "0 users; rejected {'invalid_item_id': 3, ") in err and "'users_with_short_history': 1})" in err
    assert prepare(recommendation_items_file=items) == 2
    assert "needs both recommendation_items_file and recommendation_interactions_file" in capsys.readouterr().err


def test_pipeline_prepare_kind_multimodal_reads_the_users_pairs(tmp_path, capsys):
    import base64

    from conftest import BAD_PAIR_COUNTS, BAD_PAIRS, write_image_caption_pairs

    from rw_tf.cli.main import main
    from rw_tf.data.image_text import digit_pairs

    digits = digit_pairs()[:60]
    pairs = write_image_caption_pairs(digits, tmp_path, BAD_PAIRS)
    settings = tmp_path / "cfg.json"
    prepare = lambda path: (settings.write_text(json.dumps({"multimodal_pairs_file": path})), main(
        ["pipeline", "prepare", "--kind", "multimodal", "--config", str(settings), "--root", str(tmp_path)]))[1]
    assert prepare(pairs) == 0
    read = lambda split: [json.loads(line) for line in open(tmp_path / "data" / "multimodal" / split / "pairs.jsonl")]
    train, evaluation = read("train"), read("eval")
    assert len(evaluation) == 12 and not {r["image"]["b64"] for r in train} & {r["image"]["b64"] for r in evaluation}
    original = {r["image"]: (r["caption"], r["label"]) for r in digits}
    assert all(original[base64.b64decode(r["image"]["b64"])] == (r["caption"], r["label"]) for r in train + evaluation)
    assert rows_rejected(PipelineConfig(root=str(tmp_path)), "multimodal")[0] == BAD_PAIR_COUNTS
    assert "multimodal: 10 rows left out by PrepareData (" in capsys.readouterr().out
    (tmp_path / "one.jsonl").write_text(json.dumps({"image": "images/1.png", "caption": "one"}))
    assert prepare(str(tmp_path / "one.jsonl")) == 2
    assert "the multimodal kind's data (" in capsys.readouterr().err


def test_the_nations_transe_model_prepare_data_trained_is_trained_again_for_a_new_seed(tmp_path):
    # It was trained once per folder: a run with another seed kept the first seed's model.
    from rw_tf_pipeline.prepare import _nations_knowledge

    model, metrics = tmp_path / "transe" / "transe.keras", tmp_path / "transe" / "metrics.json"
    prepare = lambda seed, owned=True: _nations_knowledge(str(tmp_path / "a.tsv"), str(tmp_path / "transe"), seed,
                                                          owned)
    prepare(1)
    stamp = os.path.getmtime(model)
    prepare(1)
    assert os.path.getmtime(model) == stamp                     # the same settings: kept
    prepare(2, owned=False)                                     # a model the user put there: never replaced
    assert os.path.getmtime(model) == stamp and json.loads(metrics.read_text())["config"]["seed"] == 1
    prepare(2)
    assert os.path.getmtime(model) > stamp and json.loads(metrics.read_text())["config"]["seed"] == 2


def test_an_edited_input_file_runs_prepare_data_again_instead_of_its_cached_execution(tmp_path, capsys):
    # TFX caches a step by its parameters and inputs: with the same config, PrepareData was reused
    # and the run trained on the file as it was before the edit.
    from tfx import v1 as tfx
    from tfx.orchestration.pipeline import RunOptions

    from rw_tf_pipeline.pipeline import create_pipeline
    from rw_tf_pipeline.prepare import input_file

    row = lambda i: json.dumps({"question": f"Where does river {i} flow?", "answer": "north",
                                "context": f"The river number {i} flows north through the valley of town {i}."})
    train, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("\n".join(row(i) for i in range(4)))
    evaluation.write_text(row(10))
    config = PipelineConfig(root=str(tmp_path / "run"), qa_train_file=str(train), qa_eval_file=str(evaluation))
    config.validate()
    questions = lambda: [json.loads(line)["question"] for line in open(input_file(config, "qa", "eval"))]
    for expected in (["Where does river 10 flow?"], ["Where does river 10 flow?", "Where does river 11 flow?"]):
        tfx.orchestration.LocalDagRunner().run(create_pipeline("qa", config),
                                               run_options=RunOptions(to_nodes=["PrepareData"]))
        assert questions() == expected
        evaluation.write_text(row(10) + "\n" + row(11))

    # Data PrepareData cannot use stop `pipeline run` as a user error (exit 2, one line), not a failed step.
    from rw_tf.cli.main import main

    evaluation.write_text(row(0))          # its context is a training context: no eval row is left
    (tmp_path / "cfg.json").write_text(json.dumps({"qa_train_file": str(train), "qa_eval_file": str(evaluation)}))
    assert main(["pipeline", "run", "--kind", "qa", "--config", str(tmp_path / "cfg.json"),
                 "--root", config.root]) == 2
    assert f"the qa kind's data ({train} and {evaluation}): no usable rows" in capsys.readouterr().err


def test_the_run_summary_counts_the_rows_prepare_data_left_out_and_says_why():
    from rw_tf_pipeline.progress import summary_table

    stage = lambda rejected_lines, left_out: {
        "blessed": True, "gate": {"binary_accuracy": {"value": 0.91, "lower_bound": 0.6}}, "pushed_version": "17",
        "pushed_destination": "/s/17", "rejected_lines": rejected_lines, "rows_rejected_by_prepare_data": left_out,
        "data_report": "/d/data_report.json"}
    left_out = {"invalid_json": 3, "eval_text_in_train": 1200}
    table = summary_table({"pretrain": stage(None, {}), "finetune": stage(2, left_out)})
    assert table.splitlines() == [
        "pipeline  blessed  gate metric      value   bound   pushed version  rejected  path",
        "pretrain  yes      binary_accuracy  0.9100  >= 0.6  17              -         /s/17",
        "finetune  yes      binary_accuracy  0.9100  >= 0.6  17              1,205     /s/17",
        "finetune: 1,203 rows left out by PrepareData (eval_text_in_train 1,200, invalid_json 3); "
        "report: /d/data_report.json"]


def test_the_run_summary_says_why_a_model_was_not_blessed(tmp_path):
    """A candidate over the gate's lower bound but further below the blessed model than allowed was
    shown as "0.0503 >= 0.05 ... NO", with nothing saying why."""
    import tensorflow as tf
    from tensorflow_model_analysis.proto import validation_result_pb2

    from rw_tf_pipeline.mlmd_queries import gate_failures
    from rw_tf_pipeline.progress import summary_table

    result = validation_result_pb2.ValidationResult(validation_ok=False)
    failure = result.metric_validations_per_slice.add().failures.add()
    failure.metric_key.name, failure.metric_key.is_diff = "masked_lm_accuracy", True
    failure.metric_threshold.change_threshold.absolute.value = -0.02
    failure.metric_value.double_value.value = -0.0323
    under = result.metric_validations_per_slice[0].failures.add()
    under.metric_key.name = "auc"
    under.metric_threshold.value_threshold.lower_bound.value = 0.6
    under.metric_value.double_value.value = 0.55
    with tf.io.TFRecordWriter(str(tmp_path / "validations.tfrecord")) as writer:
        writer.write(result.SerializeToString())
    reasons = gate_failures(str(tmp_path), {"masked_lm_accuracy": 0.0503, "auc": 0.55})
    assert reasons == ["masked_lm_accuracy 0.0503 is 0.0323 below the blessed model's 0.0826 "
                       "(the gate allows a drop of 0.02)", "auc 0.5500 is under its lower bound 0.6"]
    assert gate_failures(str(tmp_path / "no_validation_written"), {}) == []
    stage = {"blessed": False, "gate": {"masked_lm_accuracy": {"value": 0.0503, "lower_bound": 0.05}},
             "gate_failures": reasons[:1], "pushed_version": None, "pushed_destination": None, "rejected_lines": 0,
             "rows_rejected_by_prepare_data": {}, "data_report": "/d/data_report.json"}
    assert summary_table({"pretrain": stage}).splitlines()[-1] == (
        "pretrain: not blessed: masked_lm_accuracy 0.0503 is 0.0323 below the blessed model's 0.0826 "
        "(the gate allows a drop of 0.02)")


def test_inputs_state_changes_when_a_named_or_matched_file_changes(tmp_path):
    from rw_tf_pipeline.prepare import inputs_state

    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "data[1].txt").write_text("literal name")     # a name that only looks like a pattern
    (tmp_path / "data1.txt").write_text("what the pattern data[1].txt would match")
    inputs = [str(tmp_path / "*.txt"), str(tmp_path / "data[1].txt")]
    states = [inputs_state(inputs)]
    os.utime(tmp_path / "a.txt", ns=(1, 1))                       # touched
    states.append(inputs_state(inputs))
    (tmp_path / "b.txt").write_text("new file under the pattern")
    states.append(inputs_state(inputs))
    (tmp_path / "data[1].txt").write_text("edited literal name")
    states.append(inputs_state(inputs))
    (tmp_path / "data1.txt").write_text("edited, and read only through *.txt")
    states.append(inputs_state(inputs))
    assert len(set(states)) == len(states) and inputs_state(inputs) == states[-1]
    assert inputs_state([str(tmp_path / "data[1].txt")]) == inputs_state([str(tmp_path / "data[1].txt")])
    only_literal = inputs_state([str(tmp_path / "data[1].txt")])
    (tmp_path / "data1.txt").write_text("the pattern's match changed again")
    assert inputs_state([str(tmp_path / "data[1].txt")]) == only_literal    # the literal file is what it names
