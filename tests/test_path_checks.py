"""Paths refused before any work: folders whose names TensorFlow, TFX or Beam read as file
patterns, and outputs that would delete or replace the run's own inputs. Input files whose names
only look like patterns are read as the files they name."""
import json
import os

import pytest
import tensorflow as tf

from rw_tf.cli.main import main as rw_tf_main
from rw_tf.data.corpus import read_text_files
from rw_tf.errors import UserError
from rw_tf.model_files import load_saved_model
from rw_tf.path_checks import PatternInPathError, require_model_folder, require_pattern_free_folder
from rw_tf.refine import RefineConfig, RunnerConfig, run_refinement
from rw_tf.refine.pipeline import expand_inputs
from rw_tf.training import TrainerConfig
from rw_tf.training.runner import run_task

TEXT = ("The river runs past the old mill and the bridge.\nThe miller grinds the grain every morning.\n"
        "Children play by the water in the summer.\n")


def test_tensorflow_cannot_load_models_saved_under_pattern_syntax(tmp_path):
    # The premise, on TensorFlow itself: it saves under 'm[1]' and 'm\1', then cannot load either.
    for name in ("m[1]", "m\\1"):
        module = tf.Module()
        module.v = tf.Variable(3.0)
        tf.saved_model.save(module, str(tmp_path / name))
        with pytest.raises((FileNotFoundError, tf.errors.NotFoundError), match="matching files"):
            tf.saved_model.load(str(tmp_path / name))
        with pytest.raises(PatternInPathError, match=r"the SavedModel folder '.*' has '(\[|\\)', which TensorFlow "
                                                     r"reads as file pattern syntax: a SavedModel or checkpoint"):
            load_saved_model(str(tmp_path / name))
    # '*', '?' and ']' are literal to TensorFlow's checkpoint reader: those folders stay usable.
    for name in ("m*", "m?", "m]"):
        module = tf.Module()
        module.v = tf.Variable(4.0)
        tf.saved_model.save(module, str(tmp_path / name))
        assert float(load_saved_model(str(tmp_path / name)).v) == 4.0
    with pytest.raises(PatternInPathError, match=r"has '\[' and '\\'.*\(hint: choose a folder whose path has none "
                                                 r"of \[ \\\)"):
        require_model_folder("runs/a[1]\\b", "--output-dir")


def test_training_refuses_an_output_folder_it_could_not_load_from(tmp_path, capsys):
    # Refused first, before the task (None here) or the strategy is touched: no training is lost.
    with pytest.raises(PatternInPathError, match="the output folder"):
        run_task(None, TrainerConfig(), str(tmp_path / "p[1]"))
    with pytest.raises(PatternInPathError, match="the export folder"):
        run_task(None, TrainerConfig(), str(tmp_path / "p1"), export_dir=str(tmp_path / "e[1]"))
    for command in ("pretrain", "recipe"):
        assert rw_tf_main([command, "--output-dir", str(tmp_path / "cli[1]"), "--preset", "tiny"]) == 2
        assert f"rw-tf {command}: error: the output folder" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == []


def test_refinement_refuses_an_output_folder_beam_would_match_as_a_pattern(tmp_path, capsys):
    # Before: the report of a run into 'run[1]' was read from 'run1/events/' (another run's counts),
    # or from nothing (IndexError in rw-tf refine).
    page = tmp_path / "in" / "page.html"
    page.parent.mkdir()
    page.write_text(f"<html><body><p>{TEXT}</p></body></html>")
    for name in ("run[1]", "run*", "run?", "run\\1"):
        with pytest.raises(PatternInPathError, match="which TFX and Beam read as file pattern syntax"):
            run_refinement([str(page)], str(tmp_path / name), RefineConfig(), RunnerConfig(runner="direct"))
        assert rw_tf_main(["refine", str(page), str(tmp_path / name)]) == 2
        assert "rw-tf refine: error: the output folder" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in"]        # nothing written: no lock, no log, no web sample
    require_pattern_free_folder(str(tmp_path / "run]1 {a,b}"), "the output folder")   # literal to Beam


def test_inputs_whose_names_look_like_patterns(tmp_path):
    for name in ("page[1].html", "page1.html", "page2.html"):
        (tmp_path / name).write_text(f"<html><body><p>{name} {TEXT}</p></body></html>")
    # A file that exists under the name given is that file (before: "no input files match").
    assert expand_inputs([str(tmp_path / "page[1].html")]) == [str(tmp_path / "page[1].html")]
    # A name that is no file stays a pattern.
    assert expand_inputs([str(tmp_path / "page[12].html")]) == [str(tmp_path / "page1.html"),
                                                                str(tmp_path / "page2.html")]
    (tmp_path / "notes[1].txt").write_text(TEXT)
    (tmp_path / "notes1.txt").write_text("Another file altogether, with other words in it.\nIt has two lines.\n")
    def text_of(paths):
        return " ".join(" ".join(sentences) for sentences in read_text_files(paths, min_sentence_chars=1))

    assert text_of([str(tmp_path / "notes[1].txt")]).startswith("The river runs")   # before: notes1.txt's text
    assert "Another file" not in text_of([str(tmp_path / "notes[1].txt")])
    assert "Another file" in text_of([str(tmp_path / "notes[12].txt")])


def test_pipeline_roots_and_served_base_paths(tmp_path):
    from rw_tf_pipeline.configs import PipelineConfig
    from rw_tf_serving.config import ModelSpec, write_serving_configs

    for field, value in (("root", "p[1]"), ("root", "p*"), ("data_root", "d?")):
        with pytest.raises(PatternInPathError, match="which TFX and Beam read"):
            PipelineConfig(**{field: str(tmp_path / value)})
    assert PipelineConfig(root=str(tmp_path / "p]")).root == str(tmp_path / "p]")
    with pytest.raises(ValueError, match=r"the base_path of model 'm' '/models/m\[1\]' has '\['"):
        ModelSpec(name="m", base_path="/models/m[1]")
    push = tmp_path / "push[1]" / "m" / "1"
    push.mkdir(parents=True)
    with pytest.raises(PatternInPathError, match="the base_path of model 'm'"):
        write_serving_configs(str(tmp_path / "push[1]"), str(tmp_path / "configs"))
    assert not (tmp_path / "configs").exists()


def test_outputs_that_would_destroy_their_inputs(tmp_path, capsys):
    # Refining a corpus again in place: before, `out/refined` was deleted first, then the run failed
    # ("no input files match") with the corpus gone.
    out = tmp_path / "out"
    (out / "refined").mkdir(parents=True)
    shard = out / "refined" / "documents-00000-of-00001.jsonl"
    shard.write_text(json.dumps({"id": "a", "url": "https://example.com/a", "text": TEXT}) + "\n")
    (tmp_path / "link").symlink_to(out / "refined")
    for given in (str(shard), str(out / "refined" / "*.jsonl"), str(tmp_path / "link" / "*.jsonl")):
        with pytest.raises(UserError, match=r"is in .*refined, and this run deletes and rewrites it: the input "
                                            r"would be lost \(hint: write the output somewhere else"):
            run_refinement([given], str(out), RefineConfig(), RunnerConfig(runner="direct"))
        assert rw_tf_main(["refine", given, str(out)]) == 2
        assert "and this run deletes and rewrites it" in capsys.readouterr().err
    assert json.loads(shard.read_text())["id"] == "a" and sorted(os.listdir(out)) == ["refined"]   # untouched

    # An output file that is an input, by name, through '..' or a link, or matched by the input pattern.
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    (tmp_path / "text-link.txt").symlink_to(text)
    for inputs, output in (([str(text)], str(text)), ([str(text)], str(tmp_path / "x" / ".." / "text.txt")),
                           ([str(tmp_path / "text-link.txt")], str(text)), ([str(tmp_path / "*.txt")], str(text))):
        assert rw_tf_main(["vocab", "--input", *inputs, "--output", output]) == 2
        assert "and --output replaces it: the input would be lost" in capsys.readouterr().err
    lines = tmp_path / "lines.jsonl"
    lines.write_text("a text to embed\n")
    assert rw_tf_main(["embed", "--model", str(tmp_path / "no-model"), "--input", str(lines),
                       "--output", str(lines)]) == 2
    assert "and --output replaces it" in capsys.readouterr().err
    assert text.read_text() == TEXT and lines.read_text() == "a text to embed\n"
    # Apart from the inputs, the same commands run (the refusals above are not a blanket one).
    assert rw_tf_main(["vocab", "--input", str(text), "--output", str(tmp_path / "vocab.txt"),
                       "--min-count", "1"]) == 0


@pytest.mark.parametrize("argv, named", [
    (["pretrain", "--output-dir", "", "--preset", "tiny"], "--output-dir is empty"),
    (["pretrain", "--output-dir", "out", "--vocab-file", ""], "--vocab-file is empty"),   # was: a learned vocabulary
    (["vocab", "--output", "v.txt", "--input", "a.txt", ""], "--input has an empty value"),
    (["refine", "a.html", ""], "INPUT... OUTPUT has an empty value"),
    (["pipeline", "run", "--root", ""], "--root is empty"),          # was: the default root, runs/pipeline
    (["serve", "--model-base-path", ""], "--model-base-path is empty"),   # was: the current folder, as model "."
    (["pretrain", "--output-dir", "out", "--tpu", "", "--strategy", "tpu"], "--tpu is empty"),
])
def test_empty_values_are_refused(argv, named, tmp_path, monkeypatch, capsys):
    # "" is what an unset shell variable gives ("--root $ROOT"); the commands took it for "not
    # given" or for the current folder, and ran.
    monkeypatch.chdir(tmp_path)
    assert rw_tf_main(argv) == 2
    assert capsys.readouterr().err.strip() == (f"rw-tf {argv[0]}: error: {named} (hint: give a value (is a shell "
                                               "variable unset?))")
    assert os.listdir(tmp_path) == []


def test_configs_refuse_empty_texts():
    from rw_tf.tasks import PretrainingTaskConfig
    from rw_tf_pipeline.configs import PipelineConfig

    with pytest.raises(ValueError, match="PipelineConfig.root is empty"):
        PipelineConfig(root="")
    with pytest.raises(ValueError, match="PretrainingTaskConfig.vocab_file is empty"):
        PretrainingTaskConfig.from_dict({"vocab_file": ""}, "config.json")
    with pytest.raises(ValueError, match="PretrainingTaskConfig.corpus_files is empty"):
        PretrainingTaskConfig(corpus_files=("a.txt", ""))
    assert PretrainingTaskConfig(vocab_file=None).vocab_file is None


def test_paths_no_file_system_takes(tmp_path, monkeypatch, capsys):
    # Before: "unexpected OSError: [Errno 36] File name too long" (exit 1, a traceback log) from
    # pretrain, refine, pipeline prepare and serving-config, and TensorFlow's InvalidArgumentError from vocab.
    from rw_tf.atomic_write import atomic_write

    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text(TEXT)
    (tmp_path / "page.html").write_text(f"<html><body><p>{TEXT}</p></body></html>")
    long_name = "a" * 300
    for argv in (["pretrain", "--output-dir", long_name, "--preset", "tiny"],
                 ["vocab", "--input", "text.txt", "--output", long_name + ".txt"],
                 ["refine", "page.html", long_name],
                 ["pipeline", "prepare", "--root", long_name]):
        assert rw_tf_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"rw-tf {argv[0]}: error: cannot use the path " in err and "File name too long (hint: a file or " \
               "folder name holds at most 255 bytes" in err, err
        assert "a" * 130 not in err                      # the name is shortened in the middle
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    assert rw_tf_main(["vocab", "--input", "text.txt", "--output", "loop1/vocab.txt"]) == 2
    assert "Too many levels of symbolic links (hint:" in capsys.readouterr().err
    # A legal name of 250 bytes is written: the partial file beside it takes a short name of its own
    # (before: "<name>.<random>.partial; File name too long").
    name = "é" * 125
    with atomic_write(str(tmp_path / name)) as f:
        f.write("whole\n")
    assert (tmp_path / name).read_text() == "whole\n"
    assert rw_tf_main(["vocab", "--input", "text.txt", "--output", "v" * 251 + ".txt", "--min-count", "1"]) == 0
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".partial")]


def test_a_folder_given_as_a_refinement_input(tmp_path, capsys):
    # Before: Beam matched the folder as one "file" and its worker failed to open it: "unexpected
    # RuntimeError" (exit 1) after the run had started.
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "a.html").write_text(f"<html><body><p>{TEXT}</p></body></html>")
    with pytest.raises(UserError, match=r"the input .*pages is a folder \(hint: give a pattern of the files in it, "
                                        r"such as '.*pages/\*\.warc\.gz' or '.*pages/\*\.html'\)"):
        expand_inputs([str(pages)])
    assert rw_tf_main(["refine", str(pages), str(tmp_path / "out")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert expand_inputs([str(pages / "*.html")]) == [str(pages / "a.html")]
