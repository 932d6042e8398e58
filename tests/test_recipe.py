"""The three-stage recipe: the domain task's data, warm starts, distillation from f_K in domain
pretraining (teacher checks included) and the `rw-tf recipe` command end to end."""
import json
import os
import re

import keras
import numpy as np
import pytest

from rw_tf.cli.main import main as cli_main
from rw_tf.errors import CorruptFileError, UserError
from rw_tf.knowledge.demo import nations_demo, triple_classification_rows, triple_sentence
from rw_tf.models import PretrainingModel, warm_start
from rw_tf.networks import TransformerEncoder
from rw_tf.networks.knowledge_encoder import KnowledgeEnhancedEncoder
from rw_tf.recipe import SETTINGS_FILE, RecipeConfig, _stage, check_settings
from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig

SIZES = dict(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, max_sequence_length=32)


def test_triple_classification_rows_are_facts_and_filtered_corruptions():
    demo = nations_demo()
    train, evaluation = triple_classification_rows(demo, seed=0)
    facts = {i: {triple_sentence(demo.train, t) for t in kg.triples}
             for i, kg in enumerate((demo.train, demo.valid, demo.test))}
    every_fact = set().union(*facts.values())
    test_facts = facts[2]
    assert {r["text"] for r in evaluation if r["label"] == 1} == test_facts
    assert all(r["text"] not in every_fact for r in train + evaluation if r["label"] == 0)
    assert {r["text"] for r in train if r["label"] == 1} <= facts[0]
    assert not {r["text"] for r in train} & {r["text"] for r in evaluation}
    negatives = sum(1 - r["label"] for r in evaluation)
    assert 0.9 * len(test_facts) <= negatives <= len(test_facts)   # one corruption per fact, minus repeats


def _model(encoder):
    model = PretrainingModel(encoder)
    shape = {"token_ids": (None, 32), "segment_ids": (None, 32), "padding_mask": (None, 32),
             "masked_positions": (None, 5), "entity_ids": (None, 32)}
    model.build(shape)
    return model


def test_warm_start_copies_the_core_and_heads_and_keeps_knowledge_layers():
    source = _model(TransformerEncoder(vocab_size=50, **SIZES))
    target = _model(KnowledgeEnhancedEncoder(vocab_size=50, num_entities=7, entity_embedding_dim=8, **SIZES))
    fusion_before = [w.copy() for w in target.encoder.fusion_layers[0].get_weights()]
    warm_start(target, source)
    for to, frm in [(target.encoder.embeddings, source.encoder.embeddings), (target.mlm_head, source.mlm_head),
                    (target.nsp_head, source.nsp_head), *zip(target.encoder.blocks, source.encoder.blocks)]:
        for a, b in zip(to.get_weights(), frm.get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(target.encoder.fusion_layers[0].get_weights(), fusion_before):
        np.testing.assert_array_equal(a, b)
    smaller = _model(TransformerEncoder(vocab_size=50, **{**SIZES, "hidden_size": 8, "intermediate_size": 16}))
    with pytest.raises(ValueError, match="weight shapes"):
        warm_start(smaller, source)


@pytest.fixture(scope="module")
def general(tiny_general_model):
    return tiny_general_model


def test_domain_pretraining_starts_from_the_general_model_and_distills(general, tmp_path):
    config = PretrainingTaskConfig(corpus="nations", init_from=general, kd_teacher=general, kd_weight=0.5,
                                   kd_temperature=2.0, max_sequence_length=32, target_words=8)
    task = PretrainingTask(config)
    data = task.prepare(str(tmp_path), task.trainer_config(batch_size=8))
    start = keras.saving.load_model(os.path.join(general, "model.keras"), compile=False)
    with open(os.path.join(general, "vocab.txt"), encoding="utf-8") as f:
        assert task.tokenizer.vocabulary == f.read().splitlines()
    # Domain text: evaluation pairs come from the held-out facts only.
    demo = nations_demo(seed=task.seed)
    held_out = {s for d in demo.eval_documents for s in d}
    assert data["eval_pairs"] > 0 and all(set(_sentences(t)) <= held_out for t in task.eval_pairs["text_a"])
    model = task.build_model()
    for a, b in zip(model.encoder.get_weights(), start.encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, y, w = next(iter(task.train_dataset(8)))
    np.testing.assert_allclose(y["kd"], task.teacher(x, training=False)["mlm"], rtol=1e-5, atol=1e-5)
    assert model.kd_weight == 0.5 and "kd" in model(x)


def _sentences(segment):
    out, current = [], []
    for word in segment.split(" "):
        current.append(word)
        if word.endswith("."):
            out.append(" ".join(current))
            current = []
    return out


def test_teacher_checks(general, tmp_path):
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]) + "\n")
    base = dict(corpus="nations", max_sequence_length=32, target_words=8)
    student = PretrainingTask(PretrainingTaskConfig(vocab_file=str(other), kd_teacher=general, **base))
    with pytest.raises(ValueError, match="another vocabulary"):
        student.prepare(str(tmp_path / "s"), student.trainer_config())
    with pytest.raises(ValueError, match="init_from brings its own vocabulary"):
        PretrainingTaskConfig(init_from=general, vocab_file=str(other))
    missing = PretrainingTask(PretrainingTaskConfig(init_from=str(tmp_path / "missing"), **base))
    with pytest.raises(FileNotFoundError, match="not found"):
        missing.prepare(str(tmp_path / "m"), missing.trainer_config())


@pytest.mark.slow
def test_recipe_command_runs_every_stage_and_tabulates_them(tmp_path, capsys):
    out = tmp_path / "recipe"
    assert cli_main(["recipe", "--output-dir", str(out), "--seeds", "0", "1", "--max-documents", "40",
                     "--general-steps", "4", "--domain-steps", "4", "--finetune-steps", "4",
                     "--transe-epochs", "5", "--batch-size", "8"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "recipe.json").read_text())
    for seed in ("0", "1"):
        run = result["runs"][seed]
        for arm in "abcd":
            metrics = json.loads((out / f"seed-{seed}" / arm / "metrics.json").read_text())
            assert run[arm]["after"]["accuracy"] == metrics["after"]["accuracy"]
        kd = json.loads((out / f"seed-{seed}" / "domain_kd" / "metrics.json").read_text())
        assert "kd_loss" in kd["history"] and kd["task_config"]["kd_teacher"].endswith("knowledge_model")
        refined = json.loads((out / f"seed-{seed}" / "d" / "metrics.json").read_text())
        assert "kd_loss" in refined["history"] and "kd_loss" not in json.loads(
            (out / f"seed-{seed}" / "c" / "metrics.json").read_text())["history"]
    values = [result["runs"][s]["d"]["after"]["accuracy"] for s in ("0", "1")]
    assert result["table"]["d"]["values"] == values and result["table"]["d"]["mean"] == pytest.approx(np.mean(values))
    assert "| (d) (c) + refined fine-tuning with KD |" in printed
    # Re-running skips every finished stage.
    assert cli_main(["recipe", "--output-dir", str(out), "--seeds", "0", "1", "--max-documents", "40",
                     "--general-steps", "4", "--domain-steps", "4", "--finetune-steps", "4",
                     "--transe-epochs", "5", "--batch-size", "8"]) == 0
    assert capsys.readouterr().out.count("done before") == 18


def test_a_recipe_folder_refuses_other_settings_before_any_work(tmp_path, capsys):
    """Re-running into a folder reused every finished stage whatever the settings (a stage only
    looked for its metrics.json): `--general-steps 600` over a finished 4-step run would print
    "done before" for all 18 stages and write the 4-step results into recipe.json under the new
    settings."""
    out = tmp_path / "recipe"
    first = RecipeConfig(seeds=(0,), general_steps=4, transe_epochs=5)
    check_settings(first, str(out), write=True)
    assert json.loads((out / SETTINGS_FILE).read_text())["general_steps"] == 4
    # More seeds or another strategy continue the same run.
    check_settings(RecipeConfig(seeds=(0, 1), general_steps=4, transe_epochs=5, strategy="mirrored"), str(out),
                   write=True)
    with pytest.raises(UserError, match=r"other settings: general_steps 4 \(now 600\), kd_weight 0.5 \(now 0.7\)"):
        check_settings(RecipeConfig(general_steps=600, transe_epochs=5, kd_weight=0.7), str(out), write=True)
    assert cli_main(["recipe", "--output-dir", str(out), "--general-steps", "600", "--transe-epochs", "5"]) == 2
    err = capsys.readouterr().err
    assert "holds a recipe started with other settings: general_steps 4 (now 600)" in err and "--output-dir" in err
    assert sorted(p.name for p in out.iterdir()) == [SETTINGS_FILE]   # no data, no stage


def test_a_finished_stage_whose_results_are_damaged_is_named(tmp_path):
    """A stage folder with metrics.json is taken for done; a damaged one failed later with a KeyError
    (exit 1 and a traceback) or a bare JSON error that named no file."""

    metrics = tmp_path / "metrics.json"
    done = {"before": {"accuracy": 0.5}, "after": {"accuracy": 0.8}, "train_seconds": 3.0, "export_dir": "e"}
    metrics.write_text(json.dumps(done))
    assert _stage(None, None, str(tmp_path), "stage", lambda line: None) == done
    for damaged, words in (('{"before": {}', "is not a UTF-8 JSON file"), ("[1, 2]", "must hold a JSON object"),
                           (json.dumps({**done, "after": 0.8}), "lacks ['after']"),
                           (json.dumps({"before": {}}), "lacks ['after', 'train_seconds', 'export_dir']")):
        metrics.write_text(damaged)
        with pytest.raises(CorruptFileError, match=re.escape(f"{metrics}") + ".*" + re.escape(words)):
            _stage(None, None, str(tmp_path), "stage", lambda line: None)
