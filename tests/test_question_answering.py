"""Extractive QA: word offsets, sliding windows, span decoding, bad input, MiniLM fine-tuning,
export and serving (``rw-tf finetune --task qa``, ``rw-tf predict --input``)."""
import collections
import json
import os
import subprocess
import sys

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf

from rw_tf.applications.question_answering import QuestionAnswerer, best_spans
from rw_tf.checkpoints import minilm_checkpoint_dir
from rw_tf.cli.main import main as cli_main
from rw_tf.data.qa_examples import docstring_qa_examples, read_qa_jsonl
from rw_tf.data.qa_windows import WindowSpec, question_context_windows, span_labels
from rw_tf.models import SpanQuestionAnswerer
from rw_tf.networks import TransformerEncoder
from rw_tf.tasks import QATaskConfig, QuestionAnsweringTask
from rw_tf.tasks.span_metrics import exact_match, token_f1
from rw_tf.tokenization import WordPieceTokenizer
from rw_tf.training import run_task

VARIED = ["Hello, WORLD! Café cats", "Déjà vu — naïve façade", "北京是中国的首都。東京", "a \x00 b\u200bc\td\ne",
          "e-mail: x.y@z.com 3.14159 $100", "   ", "", "İstanbul ǅ ﬁne", "ab\x0bcd \u00a0 x"]
# The answer sits late in a long context with non-ASCII text before and inside it.
LONG_CONTEXT = ("Ada Lovelace wrote the first program. " * 4 + "Les cafés à Zürich servent du thé 北京. "
                + "Café owners in Zürich serve 北京 tea every morning. " + "Filler text follows here. " * 12)


def test_word_offsets_point_into_the_source_text(minilm_tokenizer):
    ids, starts, ends = minilm_tokenizer.tokenize_with_offsets(VARIED)
    assert ids.merge_dims(1, 2).to_list() == minilm_tokenizer.tokenize(VARIED).to_list()
    words = [[text.encode()[a:b].decode() for a, b in zip(s, e)]
             for text, s, e in zip(VARIED, starts.to_list(), ends.to_list())]
    assert words[1] == ["Déjà", "vu", "—", "naïve", "façade"]          # source spelling, not normalized
    assert words[3] == ["a", "b\u200bc", "d", "e"]                      # NUL does not end the text
    _, starts, ends = minilm_tokenizer.tokenize_with_offsets([b"ok \xff bad"])
    assert (starts.to_list(), ends.to_list()) == ([[0, 7]], [[2, 10]])  # offsets in the repaired text


def _oracle_logits(labels, length):
    start = np.full((len(labels), length), -5.0, np.float32)
    end = start.copy()
    for k, (s, e) in enumerate(labels):
        if s > 0:
            start[k, s], end[k, e] = 5.0, 5.0
    return start, end


def test_sliding_windows_cover_the_context_and_decode_exact_spans(minilm_tokenizer):
    spec = WindowSpec(max_sequence_length=32, doc_stride=8, max_question_length=8, max_windows=64)
    contexts = [LONG_CONTEXT, "Short one: the answer is Déjà vu."]
    answers = ["Café owners in Zürich serve 北京 tea", "Déjà vu"]
    windows = question_context_windows(minilm_tokenizer, ["Who serves tea?", "What is it?"], contexts, spec)
    example = windows.example_index.numpy()
    assert (example == 0).sum() > 5 and (example == 1).sum() == 1
    starts, lengths = windows.window_start.numpy(), windows.window_length.numpy()
    n_pieces = windows.piece_starts.row_lengths().numpy()
    assert list(starts[example == 0]) == list(range(0, 8 * (example == 0).sum(), 8))
    assert starts[example == 0][-1] + lengths[example == 0][-1] == n_pieces[0]      # every piece covered
    assert (windows.features["token_ids"].numpy()[:, 0] == minilm_tokenizer.cls_id).all()

    char_starts = [c.index(a) for c, a in zip(contexts, answers)]
    byte_spans = np.array([[len(c[:s].encode()), len(c[:s].encode()) + len(a.encode())]
                           for c, s, a in zip(contexts, char_starts, answers)])
    labels = span_labels(windows, byte_spans[:, 0], byte_spans[:, 1]).numpy()
    assert ((labels[:, 0] > 0) == (labels[:, 1] > 0)).all() and (labels[example == 0, 0] > 0).sum() >= 1
    start_logits, end_logits = _oracle_logits(labels, 32)
    out = best_spans(windows, tf.constant(start_logits), tf.constant(end_logits), max_answer_length=16)
    for k, (context, answer, s) in enumerate(zip(contexts, answers, char_starts)):
        got = out["answer"][k].numpy().decode()
        assert got == answer and (int(out["start"][k]), int(out["end"][k])) == (s, s + len(answer))
        assert context[int(out["start"][k]):int(out["end"][k])] == answer
    # max_answer_length is honoured: a limit shorter than the answer cannot return it.
    short = best_spans(windows, tf.constant(start_logits), tf.constant(end_logits), max_answer_length=2)
    assert short["answer"][0].numpy().decode() != answers[0]


def test_bad_input_gets_clear_errors(minilm_tokenizer):
    spec = WindowSpec(max_sequence_length=32, doc_stride=8, max_question_length=8, max_windows=4)
    model = SpanQuestionAnswerer(TransformerEncoder.from_preset("tiny", vocab_size=minilm_tokenizer.vocab_size))
    qa = QuestionAnswerer(model, minilm_tokenizer, spec, max_answer_length=8)
    cases = [(["Who?"], [""], "no context"), (["Who?"], ["  \t "], "no context"),
             (["  "], ["Some context."], "question is empty"),
             (["why " * 20], ["Some context."], "longer than max_question_length=8"),
             (["Who?"], ["word " * 200], "context is longer than the model accepts"),
             (["Who?"], ["\x00\u200b"], "context is empty")]
    for questions, contexts, message in cases:
        with pytest.raises(ValueError, match=message):
            qa.answer(questions, contexts)
    with pytest.raises(ValueError, match="2 questions but 1 contexts"):
        qa.answer(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="sequences of strings"):
        qa.answer("Who?", "Ada.")
    with pytest.raises(ValueError, match="doc_stride"):
        WindowSpec(max_sequence_length=32, doc_stride=30, max_question_length=8)
    result = qa.answer(["Who wrote it?"], ["Ada wrote it."])[0]                 # untrained, but well-formed
    assert "Ada wrote it."[result["start"]:result["end"]] == result["answer"] and 0 < result["probability"] <= 1


def test_qa_rows_and_metrics(tmp_path):
    rows = docstring_qa_examples(max_examples=50)
    assert all(r["context"][r["answer_start"]:r["answer_start"] + len(r["answer"])] == r["answer"] for r in rows)
    assert len({r["group"] for r in rows}) > 5
    path = tmp_path / "qa.jsonl"
    path.write_bytes(b'{"question": "Who?", "context": "Ada wrote it.", "answer": "Ada"}\n'
                     b'{"question": "Who?", "context": "Ada wrote it.", "answer": "Bob"}\n'
                     b'{"question": "Who?", "context": "Ada wrote it.", "answer": "Ada", "answer_start": 3}\n'
                     b'{"question": "", "context": "x", "answer": "x"}\nnot json\n\xff\n'
                     # Python slicing would find the answer at -13 (from the end) and at true (1)
                     b'{"question": "Who?", "context": "Ada wrote it.", "answer": "Ada", "answer_start": -13}\n'
                     b'{"question": "Who?", "context": "xAda wrote it.", "answer": "A", "answer_start": true}\n'
                     # an answer the tokenizer reads nothing of would train as "no answer"
                     b'{"question": "Who?", "context": "Ada \\u0000\\u0000 wrote it.", "answer": "\\u0000\\u0000"}\n'
                     b'{"question": "Who?", "context": ' + b"[" * 100_000 + b"]" * 100_000 + b'}\n')
    good, rejects = read_qa_jsonl(str(path))
    assert [r["answer_start"] for r in good] == [0]
    assert dict(rejects) == {"answer_not_in_context": 1, "answer_start_mismatch": 3, "missing_field": 2,
                             "invalid_json": 2, "invalid_utf8": 1}
    assert exact_match("The Cat.", "cat") == 1.0 and token_f1("a black cat", "the cat sat") == 0.5


def test_span_model_round_trips(tmp_path):
    model = SpanQuestionAnswerer(TransformerEncoder.from_preset("tiny", vocab_size=60))
    x = {"token_ids": np.arange(16, dtype="int32").reshape(2, 8) % 60, "segment_ids": np.zeros((2, 8), "int32"),
         "padding_mask": np.array([[1] * 8, [1] * 5 + [0] * 3], "int32")}
    out = model(x)
    assert out["start"].shape == (2, 8) and float(out["end"][1, 6]) < -1e3      # padding never wins
    model.compile(optimizer="adam")
    model.optimizer.build(model.trainable_variables)    # saved with its slots, restored by compile_from_config
    model.save(tmp_path / "qa.keras")
    clone = keras.saving.load_model(tmp_path / "qa.keras")
    np.testing.assert_allclose(clone(x)["start"], out["start"], atol=1e-5)


def finetune_qa(out, steps, learning_rate):
    task = QuestionAnsweringTask(QATaskConfig(max_sequence_length=96, doc_stride=32, max_question_length=24,
                                              max_train_examples=800, max_eval_examples=60))
    trainer = task.trainer_config(batch_size=16, steps_per_epoch=steps, learning_rate=learning_rate)
    return out, run_task(task, trainer, str(out), verbose=0)


@pytest.fixture(scope="module")
def finetuned_qa(tmp_path_factory):
    """70 steps: a model that finds some spans and misses others (measured: exact match 15 of 100)."""
    return finetune_qa(tmp_path_factory.mktemp("qa"), 70, 1.5e-4)


def test_qa_training_moves_toward_exact_spans(finetuned_qa):
    _, result = finetuned_qa
    assert result["data"]["eval_windows"]["examples_over_one_window"] > 30          # sliding windows are exercised
    assert result["before"]["exact_match"] < 5.0
    assert result["after"]["exact_match"] >= result["before"]["exact_match"] + 5
    assert result["after"]["f1"] > result["before"]["f1"] + 8


@pytest.mark.slow   # 120 steps of MiniLM: 3-4 minutes on 2 cores
def test_minilm_qa_finds_exact_spans(tmp_path):
    _, result = finetune_qa(tmp_path, 120, 1e-4)
    print({k: result[k] for k in ("before", "after", "data")})
    assert result["before"]["exact_match"] < 5.0
    assert result["after"]["exact_match"] >= 40.0 and result["after"]["f1"] > result["before"]["f1"] + 20
    assert result["after"]["exact_offsets"] >= 40.0      # character offsets too (measured: EM 63.3, offsets 63.3)


def test_qa_export_serves_raw_text_through_grpc_and_cli(finetuned_qa, capsys):
    from rw_tf_serving.client import ServingClient
    from rw_tf_serving.config import ModelSpec
    from rw_tf_serving.server import LocalModelServer

    out, result = finetuned_qa
    row = docstring_qa_examples(max_examples=1, seed=7)[0]
    expected = QuestionAnswerer(keras.saving.load_model(out / "model.keras"),
                                WordPieceTokenizer(os.path.join(minilm_checkpoint_dir(), "vocab.txt")),
                                WindowSpec(96, 32, 24), 64).answer([row["question"]], [row["context"]])[0]
    # The SavedModel needs only TensorFlow and tensorflow-text.
    script = ("import json, sys, tensorflow as tf, tensorflow_text\n"
              "m = tf.saved_model.load(sys.argv[1])\n"
              "o = m.signatures['answer_question'](question=tf.constant([sys.argv[2]]),\n"
              "                                    context=tf.constant([sys.argv[3]]))\n"
              "print(json.dumps({'answer': o['answer'][0].numpy().decode(), 'start': int(o['start'][0])}))\n")
    proc = subprocess.run([sys.executable, "-c", script, result["export_dir"], row["question"], row["context"]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer == {"answer": expected["answer"], "start": expected["start"]}

    with LocalModelServer([ModelSpec("qa", str(out / "export"))], port=0) as server:
        target = f"127.0.0.1:{server.grpc_port}"
        assert cli_main(["predict", "--server", target, "--model", "qa", "--signature", "answer_question",
                         "--input", f"question={row['question']}", "--input", f"context={row['context']}"]) == 0
        served = json.loads(capsys.readouterr().out)
        assert served["answer"] == [expected["answer"]] and served["start"] == [expected["start"]]
        assert cli_main(["predict", "--server", target, "--model", "qa", "--signature", "answer_question",
                         "--input", "question=Who?", "--input", "context="]) == 2
        err = capsys.readouterr().err
        assert "INVALID_ARGUMENT" in err and "no context" in err
        client = ServingClient(target)
        with pytest.raises(grpc.RpcError) as info:
            client.predict("qa", {"question": ["Who?"], "context": ["word " * 5000]}, "answer_question")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "longer than the model accepts" in info.value.details()
        client.close()


def test_finetune_cli_rejects_options_of_other_tasks(tmp_path, capsys):
    assert cli_main(["finetune", "--task", "qa", "--output-dir", str(tmp_path), "--pairs", "x.jsonl"]) == 2
    assert "--pairs" in capsys.readouterr().err


def test_pipeline_transform_windows_the_task_way_and_its_gate_scores_the_served_offsets(finetuned_qa, tmp_path,
                                                                                       minilm_tokenizer):
    # The qa pipeline kind's Transform writes one row per question with all its windows; its
    # targets must be the command line task's, and the gate's per-question span exact match must
    # be what answer_question decides (character offsets of the answer), question by question.
    from test_transform_fns import run_transform

    from rw_tf.applications.question_answering import windows_exact_match
    from rw_tf.data.transform_fns import QA_FEATURES, QATransformConfig, qa_preprocessing_fn
    from rw_tf.tasks.question_answering import load_qa_rows, training_windows, windowable_rows

    out, _ = finetuned_qa
    config = QATransformConfig(max_sequence_length=96, doc_stride=32, max_question_length=24, max_windows=12)
    spec = config.window_spec()
    _, rows, _ = load_qa_rows(QATaskConfig(max_eval_examples=40), seed=12345)
    rows = windowable_rows(minilm_tokenizer, rows, spec, collections.Counter())
    feature_spec = {k: tf.io.FixedLenFeature([], tf.int64 if k == "answer_start" else tf.string) for k in QA_FEATURES}
    data, _ = run_transform(tmp_path, lambda inputs: qa_preprocessing_fn(inputs, config),
                            [{k: r[k] for k in QA_FEATURES} for r in rows], feature_spec)
    windows = {k: tf.constant(np.stack([np.asarray(row[k]) for row in data])) for k in data[0]}
    assert windows["token_ids"].shape == (len(rows), 12, 96) and (windows["qa_label"].numpy() == 1).all()

    x, y, stats = training_windows(minilm_tokenizer, rows, spec)
    real = windows["window_mask"].numpy().reshape(-1) > 0
    assert real.sum() == stats["windows"] and stats["examples_over_one_window"] > 10
    np.testing.assert_array_equal(windows["token_ids"].numpy().reshape(-1, 96)[real], x["token_ids"])
    np.testing.assert_array_equal(windows["start_positions"].numpy().reshape(-1)[real], y["start"])
    np.testing.assert_array_equal(windows["end_positions"].numpy().reshape(-1)[real], y["end"])

    model = keras.saving.load_model(out / "model.keras")
    gate = windows_exact_match(model, windows, 64).numpy()
    answers = QuestionAnswerer(model, minilm_tokenizer, spec, 64).answer([r["question"] for r in rows],
                                                                         [r["context"] for r in rows])
    served = [(a["start"], a["end"]) == (r["answer_start"], r["answer_start"] + len(r["answer"]))
              for a, r in zip(answers, rows)]
    print("span exact match", gate.mean(), "served offsets", np.mean(served))
    assert 0 < gate.mean() < 1 and gate.tolist() == [float(s) for s in served]


def test_an_answer_not_at_its_offset_fails_the_transform_with_the_reason():
    from rw_tf.data.qa_windows import answer_byte_span

    contexts = tf.constant(["Déjà vu: Ada wrote it.", "Ada wrote it."])
    start, end = answer_byte_span(contexts, tf.constant(["Ada", "Ada"]), tf.constant([9, 0]))
    assert start.numpy().tolist() == [11, 0] and end.numpy().tolist() == [14, 3]      # bytes, after "é" and "à"
    for offsets in ([8, 0], [-1, 0], [99, 0]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="answer is not the context's text at answer_start"):
            answer_byte_span(contexts, tf.constant(["Ada", "Ada"]), tf.constant(offsets))
