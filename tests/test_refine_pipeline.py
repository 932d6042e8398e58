"""The refinement as a Beam pipeline: the same decisions as the stages composed in plain Python, the
same bytes on the DirectRunner and on Beam's Dask runner, a consistent report, the ``rw-tf refine``
command and the TFX ``refine`` pipeline kind."""
import argparse
import collections
import filecmp
import glob
import json
import os
import random
import resource
import shutil

import pytest

from rw_tf.cli.main import main as rw_tf_main
from rw_tf.cli.refine import refine_config
from rw_tf.errors import UserError
from rw_tf.process_limits import MIN_OPEN_FILES, ensure_open_files
from rw_tf.refine import RefineConfig, RunnerConfig, UrlFilterConfig, read_refined_documents, run_refinement
from rw_tf.refine.exact_substrings import marked_windows_in_memory, remove_marked
from rw_tf.refine.language import DEFAULT_MODEL
from rw_tf.refine.minhash import duplicates_in_memory
from rw_tf.refine.pipeline import expand_inputs
from rw_tf.refine.readers import iter_records
from rw_tf.refine.stages import DocumentRefiner
from rw_tf.refine.url_filter import normalize_url
from rw_tf.refine.web_sample import write_web_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    web = write_web_sample(str(folder), max_wikipedia=4, max_news=40, max_pydoc=2)
    config = RefineConfig(url_filter=UrlFilterConfig(blocklist_file=web["blocklist_file"]))
    return web, config


@pytest.fixture(scope="module")
def direct_run(sample, tmp_path_factory):
    web, config = sample
    out = str(tmp_path_factory.mktemp("refined_direct"))
    report = run_refinement(web["inputs"], out, config, RunnerConfig(runner="direct", workers=2))
    return out, report


def reference_refinement(inputs, config):
    """The stages composed without Beam, in the documented order."""
    refiner = DocumentRefiner(config)
    docs = []
    for path in expand_inputs(inputs):
        for kind, page in iter_records(path, config.max_page_bytes):
            if kind == "page":
                doc = refiner.refine(page)[0]
                if doc is not None:
                    docs.append(doc)
    near = duplicates_in_memory([d["id"] for d in docs], [d["text"] for d in docs], config.minhash)
    docs = [d for d in docs if d["id"] not in near]
    marks = marked_windows_in_memory({d["id"]: d["text"] for d in docs}, config.exact_substrings.max_shared_tokens)
    docs = [{**d, "text": remove_marked(d["text"], marks.get(d["id"], ()), config.exact_substrings.window)}
            for d in docs]
    by_url = collections.defaultdict(list)
    for d in docs:
        if d["text"]:
            by_url[normalize_url(d["url"])].append(d)
    return sorted((min(group, key=lambda d: d["id"]) for group in by_url.values()), key=lambda d: d["id"])


def test_beam_pipeline_equals_the_stages_composed_in_python(sample, direct_run):
    web, config = sample
    out, report = direct_run
    refined = sorted(read_refined_documents(out), key=lambda d: d["id"])
    expected = reference_refinement(web["inputs"], config)
    assert [(d["id"], d["url"], d["text"]) for d in refined] == [(d["id"], d["url"], d["text"]) for d in expected]
    assert report["stages"][-1]["documents_out"] == len(refined) > 20


def test_every_stage_removes_its_planted_cases_and_the_report_adds_up(sample, direct_run):
    web, _ = sample
    out, report = direct_run
    stages = report["stages"]
    for before, after in zip(stages, stages[1:]):
        assert after["documents_in"] == before["documents_out"], after["stage"]
        if after["stage"] != "extraction":      # extraction turns HTML into words
            assert after["words_in"] == before["words_out"], after["stage"]
    for stage in stages:
        assert stage["documents_in"] == stage["documents_out"] + sum(stage["removed"].values())
    rejected = [json.loads(line) for name in os.listdir(os.path.join(out, "rejected"))
                for line in open(os.path.join(out, "rejected", name), encoding="utf-8")]
    planted = {r["id"].split("#")[-1]: r for r in rejected if "planted.jsonl#" in r["id"]}
    reason = lambda kind: next(r["reason"] for k, r in planted.items() if k.endswith(kind))  # noqa: E731
    assert reason("blocklisted_domain") == "url_blocklisted_domain"
    assert reason("url_hard_word") == "url_hard_word" and reason("url_soft_words") == "url_soft_score"
    assert reason("keyword_stuffing").startswith(("dup_", "top_", "duplicated_"))
    assert reason("duplicate_lines") in ("dup_line_frac", "dup_line_char_frac")
    # A 12-word page: repetition runs first, and one 3-gram is already 18% of so short a text.
    assert reason("short_page") in ("top_2_gram", "top_3_gram", "gopher_short_doc")
    assert reason("hashtags") == "gopher_too_many_hashes"
    assert reason("bullets_only") == "gopher_too_many_bullets"
    assert reason("boilerplate_lines") == "line_corrections_removed_too_much"
    assert reason("exact_copy") == "near_duplicate" and reason("url_recrawl_b") == "duplicate_url"
    pairs = json.load(open(web["planted_pairs"], encoding="utf-8"))
    removed_variants = {k for k, r in planted.items() if r["reason"] == "near_duplicate"}
    for pair in pairs:
        if pair["jaccard"] >= 0.85:
            assert pair["variant"] in removed_variants
        if pair["jaccard"] <= 0.6:
            assert pair["variant"] not in removed_variants
    light = next(d for d in read_refined_documents(out) if d["id"].endswith("boilerplate_light"))
    assert "12 likes" not in light["text"] and len(light["text"].split()) > 100
    quoted = next(d for d in read_refined_documents(out) if d["id"].endswith("quoted_passage"))
    rows = {r["planted"]: r for r in map(json.loads, open(os.path.join(os.path.dirname(web["blocklist_file"]),
                                                                         "planted.jsonl"), encoding="utf-8"))}
    before, passage, after = rows["quoted_passage"]["text"].split("\n\n")
    # 120 words quoted from a Wikipedia page of the sample: one copy stays (the first in id order:
    # here the essay's, planted.jsonl < wikipedia/), the other is cut; the rest of both pages stays.
    quote = " ".join(passage.split()[:60])
    holders = [d["id"] for d in read_refined_documents(out) if quote in " ".join(d["text"].split())]
    assert holders == [quoted["id"]]
    assert " ".join(quoted["text"].split()) == " ".join((before + " " + passage + " " + after).split())
    article = next(d for d in read_refined_documents(out) if d["id"].endswith("wikipedia/0000.html#0"))
    assert "Anarchism" in article["text"] and len(article["text"].split()) > 5000
    languages = collections.Counter(r["reason"] for r in rejected if r["stage"] == "language")
    assert sum(languages.values()) >= 3 and all(k.startswith("language_") for k in languages)
    with open(os.path.join(out, "report.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_dask_runner_writes_the_same_bytes(sample, direct_run, tmp_path):
    web, config = sample
    out, _ = direct_run
    dask_out = str(tmp_path / "refined_dask")
    report = run_refinement(web["inputs"], dask_out, config, RunnerConfig(runner="dask", workers=2))
    assert report["runner"]["runner"] == "dask"
    for folder in ("refined", "rejected", "events"):
        names = sorted(os.listdir(os.path.join(out, folder)))
        assert names == sorted(os.listdir(os.path.join(dask_out, folder)))
        match, mismatch, errors = filecmp.cmpfiles(os.path.join(out, folder), os.path.join(dask_out, folder), names,
                                                   shallow=False)
        assert mismatch == [] and errors == [] and match == names


def test_refine_command(sample, tmp_path, capsys):
    web, _ = sample
    folder = os.path.dirname(web["blocklist_file"])
    pages, planted = os.path.join(folder, "news", "000[0-3].html"), os.path.join(folder, "planted.jsonl")
    out = str(tmp_path / "out")
    # A page whose declared charset decodes to a lone surrogate ended the run in Beam's coder (exit 1).
    utf7 = tmp_path / "utf7.html"
    utf7.write_bytes(b'<html><head><meta charset="utf-7"></head><body><p>+2AA- ' + b"Some words. " * 80 + b"</p>")
    # A page that trafilatura takes a minute on (1 MB of attributes) is cut at the configured limit.
    slow = tmp_path / "slow.html"
    slow.write_text("<html><body><p " + " ".join(f"a{i}='x'" for i in range(100_000)) + ">hi</p></body></html>")
    # A page that libxml2 and jusText take 300 MB for (an 8 MiB one: 3 GB) is cut at the memory limit.
    wide = tmp_path / "wide.html"
    wide.write_text("<html><body><article>" + "w<br>" * 60_000 + "</article></body></html>")
    limit = tmp_path / "limit.json"
    limit.write_text('{"extraction_timeout_seconds": 3, "extraction_memory_mb": 128}')
    assert rw_tf_main(["refine", pages, planted, str(utf7), str(slow), str(wide), out, "--config", str(limit),
                       "--blocklist", web["blocklist_file"],
                       "--skip-stage", "exact_substring_dedup", "--verbose"]) == 0
    printed = capsys.readouterr().out
    assert "minhash_dedup" in printed and "exact_substring_dedup" not in printed.split("stages:")[1].splitlines()[0]
    report = json.load(open(os.path.join(out, "report.json"), encoding="utf-8"))
    assert f"{report['stages'][-1]['documents_out']:,} documents" in printed
    extraction = report["stages"][2]
    assert extraction["stage"] == "extraction"
    assert extraction["removed"]["extraction_timeout"] == 1 and extraction["removed"]["extraction_memory"] == 1
    assert rw_tf_main(["refine", str(tmp_path / "missing*.warc.gz"), out]) == 2
    assert "no input files match" in capsys.readouterr().err
    assert rw_tf_main(["refine", "embedded", pages, out]) == 2
    assert rw_tf_main(["refine", out]) == 2
    capsys.readouterr()
    # 100,000 x 100,000 hash functions asked NumPy for 74.5 GiB in each Beam worker: exit 1.
    config = tmp_path / "config.json"
    config.write_text('{"minhash": {"bands": 100000, "rows": 100000}}')
    assert rw_tf_main(["refine", "--config", str(config), pages, str(tmp_path / "big")]) == 2
    assert "MinHashConfig.bands x rows must be at most 65,536 hash functions" in capsys.readouterr().err
    # The files a config names are read before the run: they were read only in Beam's workers, where
    # a missing or corrupt one failed as a RuntimeError (exit 1).
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9.example\n")
    (tmp_path / "truncated.ftz").write_bytes(open(DEFAULT_MODEL, "rb").read()[:1000])
    for settings, message in (({"url_filter": {"blocklist_file": str(tmp_path / "none.txt")}}, "No such file"),
                              ({"url_filter": {"words_file": str(tmp_path / "latin1.txt")}}, "latin1.txt:1: not UTF-8"),
                              ({"language_model": str(tmp_path / "truncated.ftz")}, "cannot load the language-ID"),
                              ({"languages": ["en", "english"]}, "lid.176.ftz has no language 'english'")):
        config.write_text(json.dumps(settings))
        assert rw_tf_main(["refine", "--config", str(config), pages, str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
    # The web sample's blocklist replaced the one a --config file names; --blocklist comes first.
    config.write_text(json.dumps({"url_filter": {"blocklist_file": "mine.txt"}}))
    given = argparse.Namespace(config=str(config), languages=None, skip_stages=None, blocklist=None)
    assert refine_config(given, "sample.txt").url_filter.blocklist_file == "mine.txt"
    assert refine_config(argparse.Namespace(**{**vars(given), "blocklist": "flag.txt"}),
                         "sample.txt").url_filter.blocklist_file == "flag.txt"
    assert refine_config(argparse.Namespace(**{**vars(given), "config": None}),
                         "sample.txt").url_filter.blocklist_file == "sample.txt"


def test_rows_that_give_one_id_are_one_document(tmp_path):
    """Rows of a JSON Lines file may give their own id. Two copies under one id both survived
    MinHash (a cluster of one id), and "1" and 1, or an id equal to another row's line number, were
    one id too."""
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(5000)]
    texts = [" ".join(rng.choice(words) for _ in range(300)) for _ in range(6)]
    rows = [{"id": "a", "url": "https://x.example/1", "text": texts[0]},
            {"id": "a", "url": "https://x.example/2", "text": texts[0]},       # a copy under the same id
            {"id": 2, "url": "https://x.example/3", "text": texts[1]},
            {"id": "2", "url": "https://x.example/4", "text": texts[2]},      # "2" and 2
            {"url": "https://x.example/5", "text": texts[3]},                 # no id: its line number, 4
            {"id": 4, "url": "https://x.example/6", "text": texts[4]},
            {"id": "b", "url": "https://x.example/7", "text": texts[5]}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = RefineConfig(skip_stages=("language", "gopher_repetition", "gopher_quality", "line_corrections"))
    report = run_refinement([str(tmp_path / "rows.jsonl")], str(tmp_path / "out"), config)
    refined = list(read_refined_documents(str(tmp_path / "out")))
    ids = [doc["id"].rsplit("#", 1)[1] for doc in refined]
    assert sorted(ids) == ["2", "4", "a", "b"]
    assert {doc["url"] for doc in refined} == {"https://x.example/1", "https://x.example/3", "https://x.example/5",
                                               "https://x.example/7"}      # the smallest url of each id
    unique = next(stage for stage in report["stages"] if stage["stage"] == "unique_ids")
    assert unique["removed"] == {"duplicate_id": 3} and unique["documents_in"] == 7
    with pytest.raises(ValueError, match="unique_ids cannot be skipped"):
        RefineConfig(skip_stages=("unique_ids",))


def test_refine_pipeline_kind(sample, tmp_path):
    from rw_tf_pipeline.configs import PipelineConfig
    from rw_tf_pipeline.local_runner import run_pipeline

    web, config = sample
    folder = os.path.dirname(web["blocklist_file"])
    inputs = [os.path.join(folder, "news", "001*.html"), os.path.join(folder, "planted.jsonl")]
    pipeline_config = PipelineConfig(root=str(tmp_path), web_inputs=inputs,
                                     refine_config={"url_filter": {"blocklist_file": web["blocklist_file"]}},
                                     beam_direct_running_mode="multi_processing")
    summary = run_pipeline("refine", pipeline_config)["refine"]
    refined = sorted(read_refined_documents(summary["uri"]), key=lambda d: d["id"])
    assert [(d["id"], d["text"]) for d in refined] == [(d["id"], d["text"])
                                                      for d in reference_refinement(inputs, config)]
    assert summary["documents"] == len(refined) > 10 and os.path.exists(summary["report"])


def test_prepared_documents_do_not_depend_on_the_order_of_the_refined_files(tmp_path):
    # Two refinements of the same pages under different run folders shard them differently (ids
    # carry the input paths): the documents, hence the seeded split and vocabulary, must not change.
    from rw_tf_pipeline.configs import PipelineConfig
    from rw_tf_pipeline.prepare import refined_web_corpus

    rows = [json.dumps({"id": f"d{i}", "url": "u", "text": f"The first sentence of page {i} is here. The second "
                        f"one of page {i} follows it closely. A third sentence ends page {i}."}) for i in range(12)]
    documents = []
    for name, shards in (("a", [rows[:5], rows[5:]]), ("b", [rows[7:][::-1], rows[:7][::-1]])):
        (tmp_path / name / "refined").mkdir(parents=True)
        for i, shard in enumerate(shards):
            (tmp_path / name / "refined" / f"documents-{i:05d}-of-00002.jsonl").write_text("\n".join(shard) + "\n")
        documents.append(refined_web_corpus(PipelineConfig(root=str(tmp_path)), str(tmp_path / name),
                                            collections.Counter()))
    assert len(documents[0]) == 12 and documents[0] == documents[1]


def test_pretraining_data_come_from_the_refined_corpus_and_follow_its_changes(direct_run, tmp_path):
    from rw_tf_pipeline.configs import PipelineConfig
    from rw_tf_pipeline.prepare import data_paths, prepare_pretraining_data

    out, _ = direct_run
    config = PipelineConfig(root=str(tmp_path), vocab_size=800, target_words=8)
    assert prepare_pretraining_data(config, refined_corpus=out)
    paths = data_paths(config)
    refined_text = " ".join(" ".join(d["text"].split()) for d in read_refined_documents(out))
    rows = [json.loads(line) for split in ("train", "eval")
            for line in open(paths[f"pretrain/{split}"], encoding="utf-8")]
    assert rows and all(row["text_a"] in refined_text for row in rows[:200])
    report = json.load(open(paths["report"], encoding="utf-8"))
    assert report["corpus_source"] == f"web:{out}"
    stamp = os.path.getmtime(paths["vocab"])
    # The fine-tuning pipeline has no refinement step: it keeps what the pretraining pipeline prepared.
    assert not prepare_pretraining_data(config, refined_corpus=None)
    assert os.path.getmtime(paths["vocab"]) == stamp and not os.path.exists(config.refined_web_dir)
    # A new refinement (another artifact) rewrites them.
    other = tmp_path / "other_refinement"
    (other / "refined").mkdir(parents=True)
    (other / "refined" / "documents-00000-of-00001.jsonl").write_text(
        "".join(json.dumps({"id": f"d{i}", "url": "u", "text": f"The first sentence of page {i} is here. The second "
                            f"one of page {i} follows it closely. A third sentence ends page {i}."}) + "\n"
                for i in range(30)))
    assert prepare_pretraining_data(config, refined_corpus=str(other))
    assert json.load(open(paths["report"], encoding="utf-8"))["corpus_source"] == f"web:{other}"


def test_the_refine_step_copies_an_equal_output_and_refines_new_files_under_the_same_pattern(sample, tmp_path,
                                                                                            monkeypatch):
    """A compiled Kubeflow spec cached RefineWebData by its parameters: a scheduled run never read the
    web files added under the same web_inputs pattern. Now the step runs every time and refines only
    when the files or the settings changed, else copies its newest output (same documents, same
    corpus source, so the pretraining data and every step after them stay as they are)."""
    from rw_tf_pipeline import prepare
    from rw_tf_pipeline.configs import PipelineConfig

    web, _ = sample
    pages = tmp_path / "pages"
    pages.mkdir()
    for pattern in web["inputs"]:          # a few pages of each kind: six refinements follow
        for i, path in enumerate(sorted(glob.glob(pattern))[:3]):
            shutil.copy(path, pages / f"{os.path.basename(os.path.dirname(path))}-{i}-{os.path.basename(path)}")
    config = PipelineConfig(root=str(tmp_path / "root"), web_inputs=[str(pages / "*")], beam_direct_num_workers=1,
                            refine_config={"url_filter": {"blocklist_file": web["blocklist_file"]}})
    first, copied = prepare.refine_web_step(config, str(tmp_path / "run1"))
    assert not copied and first["stages"][0]["documents_in"] > 0

    def texts(folder):
        return sorted(d["text"] for d in read_refined_documents(folder))

    refinements = []
    real = prepare.refine_web
    monkeypatch.setattr(prepare, "refine_web", lambda *a, **k: refinements.append(a) or real(*a, **k))
    second, copied = prepare.refine_web_step(config, str(tmp_path / "run2"))
    assert copied and not refinements and second == first and texts(tmp_path / "run2") == texts(tmp_path / "run1")
    sources = [prepare.corpus_source(config, str(tmp_path / f"run{i}")) for i in (1, 2)]
    assert sources[0] == sources[1] and sources[0].startswith("web:refinement ")
    # A new page under the same pattern: refined again, and a new corpus source.
    (pages / "added.html").write_text("<html><body><article><p>" + " ".join(
        f"The added page has sentence number {i} about rivers, bridges and the towns along them." for i in range(30))
        + "</p></article></body></html>", encoding="utf-8")
    third, copied = prepare.refine_web_step(config, str(tmp_path / "run3"))
    assert not copied and len(refinements) == 1
    assert third["stages"][0]["documents_in"] == first["stages"][0]["documents_in"] + 1
    assert prepare.corpus_source(config, str(tmp_path / "run3")) != sources[0]
    # Other settings, same files: refined again.
    stricter = PipelineConfig(**{**config.to_dict(), "refine_config": {
        **config.refine_config, "gopher_quality": {"min_words": 120}}})
    assert not prepare.refine_web_step(stricter, str(tmp_path / "run4"))[1] and len(refinements) == 2
    # The step's own record, damaged or naming something else: refined again, and the record rewritten
    # (the refinement itself stood in for by a copy of run4's, as the record alone is under test).
    monkeypatch.setattr(prepare, "refine_web", lambda config, output_dir, pipeline=None: refinements.append(
        output_dir) or prepare._copy_folder(str(tmp_path / "run4"), output_dir))
    record = os.path.join(config.data_dir, prepare.REFINEMENT_RECORD)
    for damaged in (b"\xff\xfe{", b'{"output": 5}', b'{"output": "/nowhere"}'):
        with open(record, "wb") as f:
            f.write(damaged)
        assert not prepare.refine_web_step(stricter, str(tmp_path / "run5"))[1]
    assert prepare.refine_web_step(stricter, str(tmp_path / "run6"))[1] and len(refinements) == 5


def test_local_runs_need_room_to_open_files(sample, tmp_path, monkeypatch, capsys):
    """Under `ulimit -n 20` Beam's job service could not start its workers and `rw-tf refine` waited
    for ever; now the soft limit is raised where the hard limit allows, else the run is refused."""
    from rw_tf_pipeline.configs import PipelineConfig
    from rw_tf_pipeline.local_runner import run_pipeline

    set_to = []
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: set_to.append((which, limits)))
    monkeypatch.setattr(resource, "getrlimit", lambda which: (20, 4096))
    assert ensure_open_files("a run") == MIN_OPEN_FILES == 256
    assert set_to == [(resource.RLIMIT_NOFILE, (256, 4096))]
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 1024))
    assert ensure_open_files("a run") == 1024 and len(set_to) == 1     # enough: left as it is

    monkeypatch.setattr(resource, "getrlimit", lambda which: (20, 20))
    web, config = sample
    message = r"needs to open at least 256 files; this process may open 20 \(hint: raise the limit \(`ulimit -n 256`"
    for runner in ("direct", "dask"):
        earlier = tmp_path / runner / "refined" / "documents-00000-of-00001.jsonl"    # a finished run's corpus
        earlier.parent.mkdir(parents=True)
        earlier.write_text('{"id": "a", "text": "kept"}\n')
        with pytest.raises(UserError, match=f"a local {runner} run with 2 workers {message}"):
            run_refinement(web["inputs"], str(tmp_path / runner), config, RunnerConfig(runner=runner, workers=2))
        assert earlier.read_text() == '{"id": "a", "text": "kept"}\n'       # refused before anything is deleted
    with pytest.raises(UserError, match="a TFX run on Beam's local runner " + message):
        run_pipeline("pretrain", PipelineConfig(root=str(tmp_path / "pipeline")))
    capsys.readouterr()
    assert rw_tf_main(["pipeline", "run", "--root", str(tmp_path / "cli")]) == 2     # a user error, not "failed"
    err = capsys.readouterr().err
    assert "rw-tf pipeline: error: a TFX run on Beam's local runner needs to open at least 256" in err
    assert len(set_to) == 1
