"""Evaluation splits never share text with training, whoever made the split: the library's own
default splits, a corpus whose documents repeat sentences, or a user's train and eval files that
hold the same rows (the class of leak; each case here failed before ``drop_eval_rows_seen_in_training``
and the deduplicating ``split_documents``)."""
import json
import unicodedata

import numpy as np
import pytest

from rw_tf.cli.main import main as cli_main
from rw_tf.data.splits import drop_eval_rows_seen_in_training, split_documents, text_key
from rw_tf.knowledge.training import TransEConfig, load_splits
from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig
from rw_tf.tasks.classification import ClassificationTaskConfig, load_rows
from rw_tf.tasks.question_answering import QATaskConfig, load_qa_rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_eval_rows_that_repeat_a_training_text_are_removed_and_counted():
    assert text_key("  The\tCAT  sat.\n") == text_key("the cat sat.") != text_key("the cat sat")
    train = [{"query": "How do I open a file?", "item": "Use open()."}, {"query": "q2", "item": "Close it."}]
    evaluation = [{"query": "how do i  OPEN a file?", "item": "something new"},   # query seen as a query
                  {"query": "A new question", "item": "close it."},            # item seen as an item
                  {"query": "Use open().", "item": "fresh"},                   # query seen as an item
                  {"query": "A new question", "item": "fresh"}]
    rejects = {"invalid_json": 1}
    kept = drop_eval_rows_seen_in_training(train, evaluation, ["query", "item"], rejects)
    assert kept == [evaluation[3]] and rejects == {"invalid_json": 1, "eval_text_in_train": 3}
    kept = drop_eval_rows_seen_in_training(train, evaluation, ["item"], rejects, "other")
    assert kept == [evaluation[0], evaluation[2], evaluation[3]] and rejects["other"] == 1


def copies_the_tokenizer_reads_alike(text):
    """Copies of ``text`` that an uncased tokenizer reads as the same words."""
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    return [text.upper(), text.replace("é", "e").replace("ï", "i"), unicodedata.normalize("NFD", text),
            text.replace(" ", "\u200b ", 2).replace("a", "a\u00ad", 1), full_width,
            text.replace(", ", " ,").replace(".", " ."), "\t" + text.replace(" ", "  \n") + " ",
            text.replace(" ", "")]


def test_copies_that_differ_only_in_what_the_tokenizer_ignores_are_the_same_text(tmp_path):
    """The class of an upper-cased copy: accents, NFC/NFD, zero-width and soft hyphens, full-width
    letters, the spacing of punctuation. Before, ``text_key`` only folded case and white space and
    sentence removal compared exact strings, so each of these copies stayed on both sides."""
    text = "Le café naïf, près de la gare, ouvre à 7 h."
    copies = copies_the_tokenizer_reads_alike(text)
    assert len({text_key(c) for c in copies + [text]}) == 1
    for changed in (text[:-1], text.replace("7", "8"), text.replace("gare", "gate"), text + "!"):
        assert text_key(changed) != text_key(text)

    rows = [{"text": f"Row {i} tells the café story number {i}, naïvely.", "label": i % 2} for i in range(40)]
    evaluation = rows[30:] + [{**rows[i], "text": copy}
                              for i, copy in enumerate(copies_the_tokenizer_reads_alike(rows[0]["text"]))]
    config = ClassificationTaskConfig(train_file=write_jsonl(tmp_path / "train.jsonl", rows[:30]),
                                      eval_file=write_jsonl(tmp_path / "eval.jsonl", evaluation))
    _, kept, rejects = load_rows(config, seed=0)
    assert kept == rows[30:] and rejects == {"eval_text_in_train": 8}

    shared = "This sentence is boilerplate, and every page of the café repeats it."
    docs = [[f"Document {i} opens with its own sentence.", ([shared] + copies_the_tokenizer_reads_alike(shared))[i % 9],
             f"Document {i} closes with another one."] for i in range(27)]
    train, held_out, removed = split_documents(docs, 0.25, seed=3)
    assert removed["duplicate_sentences"] == 26
    assert not {text_key(s) for d in held_out for s in d} & {text_key(s) for d in train for s in d}


def test_split_documents_holds_out_no_sentence_that_training_has():
    shared = "This sentence is boilerplate that every page of the site repeats."
    docs = [[f"Document {i} opens with its own sentence.", shared, f"Document {i} closes with another one."]
            for i in range(20)]
    train, evaluation, removed = split_documents(docs, 0.25, seed=3)
    train_sentences = {s for d in train for s in d}
    assert evaluation and not {s for d in evaluation for s in d} & train_sentences
    assert removed == {"duplicate_sentences": 19, "documents_without_two_sentences": 0}
    assert sum(map(len, train)) + sum(map(len, evaluation)) == 3 * 20 - 19
    # Held-out documents that removal left too short for a pair are not counted towards the two it needs.
    docs = [[f"Doc {i} sentence {j} is unique." for j in range(2 if i % 3 else 6)] for i in range(30)]
    for seed in range(20):
        _, plain, _ = split_documents(docs, 0.05, seed)
        train, evaluation, _ = split_documents(docs, 0.05, seed, usable=lambda d: len(d) >= 6)
        assert len(plain) == 2 and sum(len(d) >= 6 for d in evaluation) == 2
        assert set(map(tuple, plain)) <= set(map(tuple, evaluation))   # the same draw, extended
        assert sorted(map(tuple, train + evaluation)) == sorted(map(tuple, docs))
    with pytest.raises(ValueError, match="1 documents keep two sentences"):
        split_documents([["One sentence here.", "Two sentences here."]] * 6, 0.25, seed=0)


def test_local_pretraining_evaluates_on_text_it_never_trained_on(tmp_path):
    """``rw-tf pretrain --corpus-file``: the pipeline removed repeated sentences before it held out
    documents, the local task did not (5.7% of the embedded corpus' eval sentences were in training)."""
    shared = "Subscribe to our newsletter for the latest updates on every topic we cover."
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(300)]
    docs = []
    for _ in range(24):
        sentences = [" ".join(rng.choice(words, 12)).capitalize() + "." for _ in range(6)]
        sentences.insert(3, shared)
        docs.append(" ".join(sentences))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n---\n".join(docs), encoding="utf-8")
    task = PretrainingTask(PretrainingTaskConfig(preset="tiny", corpus_files=[str(corpus)], vocab_size=400,
                                                 target_words=20, max_sequence_length=64, eval_fraction=0.25))
    data = task.prepare(str(tmp_path / "out"), task.trainer_config())
    assert data["removed_before_split"]["duplicate_sentences"] == 23

    def texts(pairs, columns):
        return [t for c in columns for t in pairs[c]]

    assert any(shared in t for t in texts(task.train_pairs, ("text_a", "text_b")))
    assert not any(shared in t for t in texts(task.eval_pairs, ("text_a", "text_b")))


def test_user_train_and_eval_files_that_share_rows(tmp_path):
    rows = [{"text": f"Example number {i} says something about topic {i % 3}.", "label": i % 2} for i in range(40)]
    train = write_jsonl(tmp_path / "train.jsonl", rows[:30])
    copied = [{**rows[3], "text": rows[3]["text"].upper()}, {**rows[7], "label": 1 - rows[7]["label"]}]
    evaluation = write_jsonl(tmp_path / "eval.jsonl", rows[30:] + copied)
    config = ClassificationTaskConfig(train_file=train, eval_file=evaluation)
    _, kept, rejects = load_rows(config, seed=0)
    assert [r["text"] for r in kept] == [r["text"] for r in rows[30:]] and rejects == {"eval_text_in_train": 2}

    qa = [{"question": f"What is item {i}?", "context": f"Item {i} is a thing numbered {i}.", "answer": f"{i}"}
          for i in range(12)]
    config = QATaskConfig(train_file=write_jsonl(tmp_path / "qa_train.jsonl", qa[:8]),
                          eval_file=write_jsonl(tmp_path / "qa_eval.jsonl",
                                                qa[8:] + [{**qa[1], "question": "Which number has item 1?"}]))
    _, kept, rejects = load_qa_rows(config, seed=0)
    assert [r["context"] for r in kept] == [r["context"] for r in qa[8:]]
    assert rejects["eval_text_in_train"] == 1


def test_retrieval_pairs_repeated_across_the_split_stay_out_of_evaluation(tmp_path, capsys):
    """Through the CLI: pairs without groups are cut 80/20, so a pair listed twice could sit on both sides."""
    pairs = [{"query": f"how do I use function number {i}", "item": f"Function {i} does task {i}."} for i in range(40)]
    pairs[-1] = dict(pairs[0])          # in the last fifth, so in evaluation, and in training
    pairs[-2] = {"query": "a new question", "item": pairs[1]["item"].lower()}
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    out = tmp_path / "out"
    assert cli_main(["finetune", "--task", "retrieval", "--output-dir", str(out), "--pairs", path,
                     "--batch-size", "8", "--epochs", "1", "--steps-per-epoch", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["rejected_rows"] == {"eval_text_in_train": 2}
    assert metrics["data"]["eval_pairs"] == 6
    out = capsys.readouterr().out                   # Keras' progress, then the summary, which says what
    printed = json.loads(out[out.index("\n{\n") + 1:] if not out.startswith("{") else out)   # it left out
    assert printed["left_out"] == {"rejected_rows": {"eval_text_in_train": 2}}


def test_knowledge_graph_test_triples_that_training_holds_are_counted(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("a\tr\tb\nb\tr\tc\nc\tr\ta\n", encoding="utf-8")
    test = tmp_path / "test.tsv"
    test.write_text("a\tr\tb\na\tr\tc\n", encoding="utf-8")
    _, _, held_out = load_splits(TransEConfig(train_file=str(train), test_file=str(test)))
    assert held_out.triples.tolist() == [[0, 0, 2]] and held_out.rejects.counts["in_train"] == 1
    test.write_text("a\tr\tb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no test triples in .*in_train"):
        load_splits(TransEConfig(train_file=str(train), test_file=str(test)))
