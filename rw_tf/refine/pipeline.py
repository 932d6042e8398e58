"""MacroData Refinement as Apache Beam transforms: web pages in, a refined corpus and a report out.

    ReadWebPages -> RefineDocuments (url filter .. line corrections) -> DeduplicateIds
      -> MinHashDeduplicate -> ExactSubstringDeduplicate -> DeduplicateUrls -> refined/, rejected/, events/

Each transform emits one stream of tagged records, ``("doc", document)``, ``("drop", record)``
(one per removed document: stage, reason, detail) and ``("event", ((stage, outcome), counts))``,
which ``RefineWeb`` splits and sums per stage into the report.

Portable by construction: the transforms use only Create, ParDo (``process`` alone: no ``setup``,
side inputs or tagged outputs), GroupByKey and Flatten, and every GroupByKey is keyed by an
integer digest. That is what Beam 2.61's Dask runner executes (it maps ``DoFn.process`` over Dask
bags and groups with Python's ``hash()``, which for strings differs between worker processes), so
the same pipeline runs unchanged on the DirectRunner, the Dask runner, Dataflow, Flink and Spark,
with byte-identical output files (each shard is sorted). ``run_refinement`` builds the runner
from ``RunnerConfig``.

Outputs under ``output_dir`` (local or any Beam filesystem such as gs://):
``refined/documents-SSSSS-of-NNNNN.jsonl`` ({"id", "url", "text"}), ``rejected/rejected-*.jsonl``
(no text), ``report.json`` and ``report.png`` (``rw_tf.refine.report``).

Example:
    >>> report = run_refinement(["pages/*.warc.gz"], "/tmp/refined")      # doctest: +SKIP
    >>> report["stages"][-1]["documents_out"]                              # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import zlib
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from rw_tf.config import DictConfig, check_choice, checks_number_arguments
from rw_tf.errors import UserError
from rw_tf.folder_lock import output_folder_lock
from rw_tf.path_checks import (
    PATTERN_CHARACTERS,
    require_inputs_outside,
    require_pattern_free_folder,
    require_utf8_paths,
)
from rw_tf.process_limits import ensure_open_files
from rw_tf.refine.exact_substrings import later_occurrences, remove_marked, window_keys
from rw_tf.refine.minhash import MinHasher, cluster_roots, star_edges
from rw_tf.refine.readers import iter_stream
from rw_tf.refine.report import write_report
from rw_tf.refine.stages import CORPUS_STAGES, DocumentRefiner, RefineConfig, drop_record
from rw_tf.refine.text import count_words
from rw_tf.refine.url_filter import normalize_url

DOC, DROP, EVENT = "doc", "drop", "event"
RUNNERS = ("direct", "dask", "beam")


def stable_key(*parts: Any) -> int:
    """A 63-bit integer digest of ``parts``: the GroupByKey key everywhere (an int hashes the same
    in every process; a str does not)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest(), "little") >> 1


def _event(stage: str, outcome: str, words_in: int, words_out: int) -> Tuple[str, Tuple]:
    return EVENT, ((stage, outcome), (1, words_in, words_out))


def _drop(doc: Dict, stage: str, reason: str, detail: str = "") -> Iterable[Tuple[str, Any]]:
    yield DROP, drop_record(doc, stage, reason, detail)
    yield _event(stage, reason, count_words(doc.get("text", "")), 0)


def _keep(doc: Dict, stage: str, words_in: int, outcome: str = "kept") -> Iterable[Tuple[str, Any]]:
    yield DOC, doc
    yield _event(stage, outcome, words_in, count_words(doc["text"]))


def split_tagged(records, label: str) -> Dict[str, Any]:
    """A stream of tagged records -> {"doc", "drop", "event"} collections (plain FlatMaps: no
    multi-output ParDo is needed)."""
    return {tag: records | f"{label}{tag.title()}s" >> beam.FlatMap(lambda r, t=tag: [r[1]] if r[0] == t else [])
            for tag in (DOC, DROP, EVENT)}


def group_by(pcoll, label: str, key: Callable[[Any], Any]):
    """GroupByKey on ``stable_key(key(x))`` -> lists of the elements whose ``key`` is equal (a digest
    collision only puts two keys in one bucket; they are told apart here)."""
    def regroup(item):
        groups: Dict[Any, List] = {}
        for value in item[1]:
            groups.setdefault(key(value), []).append(value)
        return list(groups.values())

    return (pcoll | f"{label}Key" >> beam.Map(lambda x: (stable_key(key(x)), x))
            | f"{label}Group" >> beam.GroupByKey() | f"{label}Regroup" >> beam.FlatMap(regroup))


def join_by_id(docs, extra, label: str):
    """``(id, [documents with that id], [values of the (id, value) pairs of extra])`` per id."""
    tagged = ((docs | f"{label}TagDocs" >> beam.Map(lambda d: ("d", d["id"], d)),
               extra | f"{label}TagExtra" >> beam.Map(lambda kv: ("x", kv[0], kv[1])))
              | f"{label}Both" >> beam.Flatten())
    return group_by(tagged, label, key=lambda t: t[1]) | f"{label}Join" >> beam.Map(
        lambda group: (group[0][1], [t[2] for t in group if t[0] == "d"], [t[2] for t in group if t[0] == "x"]))


# What a run writes in its output folder, replacing an earlier run's (the folders are deleted first).
REPLACED_FOLDERS = ("refined", "rejected", "events")
REPLACED_OUTPUTS = REPLACED_FOLDERS + ("report.json", "report.png")


def expand_inputs(patterns: Sequence[str]) -> List[str]:
    """The files matching ``patterns`` (sorted, distinct); a pattern that matches nothing is an error.
    A file whose name only looks like a pattern (``page[1].html``) is that file when it exists."""
    if not patterns:
        raise ValueError("no inputs given")
    files, missing = set(), []
    for pattern, result in zip(patterns, FileSystems.match(list(patterns))):
        literal = any(c in pattern for c in PATTERN_CHARACTERS) and FileSystems.exists(pattern)
        found = [pattern] if literal else [m.path for m in result.metadata_list]
        require_utf8_paths(found, pattern)
        # Beam matches a folder named whole as one "file" that its workers then fail to open.
        folders = [path for path in found if "://" not in path and os.path.isdir(path)]
        if folders:
            raise UserError(f"the input {folders[0]} is a folder", hint="give a pattern of the files in it, such as "
                            f"'{os.path.join(folders[0], '*.warc.gz')}' or '{os.path.join(folders[0], '*.html')}'")
        files.update(found)
        if not found:
            missing.append(pattern)
    if missing:
        raise FileNotFoundError(f"no input files match {missing}")
    return sorted(files)


class _ReadFile(beam.DoFn):
    def __init__(self, max_page_bytes: int) -> None:
        self.max_page_bytes = max_page_bytes

    def process(self, path: str):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            for kind, item in iter_stream(raw, path, self.max_page_bytes):
                if kind == "page":
                    yield DOC, item
                    yield _event("read", "kept", 0, 0)
                else:
                    yield DROP, {**item, "url": ""}
                    yield _event("read", item["reason"], 0, 0)


@checks_number_arguments()
class ReadWebPages(beam.PTransform):
    """Files (WARC, HTML, JSON Lines; any Beam filesystem) -> tagged pages and rejects. Patterns are
    expanded when the pipeline is built and the files dealt into ``groups`` lists: runners that
    rebalance (Direct, Dataflow, Flink) spread the files after ``Reshuffle``; on the Dask runner,
    where Reshuffle does nothing, the groups are the partitions (one per file would mean thousands
    of scheduler tasks per shuffle, and every Flatten adds its inputs' partitions up)."""

    def __init__(self, patterns: Sequence[str], max_page_bytes: int, groups: int = 8) -> None:
        super().__init__()
        self.files, self.max_page_bytes = expand_inputs(patterns), max_page_bytes
        self.groups = max(1, min(groups, len(self.files)))

    def expand(self, pipeline):
        groups = [self.files[i::self.groups] for i in range(self.groups)]
        return (pipeline | "FileGroups" >> beam.Create(groups) | "Files" >> beam.FlatMap(lambda group: group)
                | "Spread" >> beam.Reshuffle() | "Parse" >> beam.ParDo(_ReadFile(self.max_page_bytes)))


class _RefineDocuments(beam.DoFn):
    """The per-document stages; the refiner (and its fastText model) is made on first use in each
    worker, since not every runner calls ``DoFn.setup``."""

    def __init__(self, config: RefineConfig) -> None:
        self.config = config
        self._refiner: Optional[DocumentRefiner] = None

    def __getstate__(self):
        return {"config": self.config, "_refiner": None}

    def process(self, page: Dict):
        if self._refiner is None:
            self._refiner = DocumentRefiner(self.config)
        doc, events, dropped = self._refiner.refine(page)
        for stage, outcome, docs, words_in, words_out in events:
            yield EVENT, ((stage, outcome), (docs, words_in, words_out))
        yield (DROP, dropped) if dropped is not None else (DOC, doc)


class _MinHashBands(beam.DoFn):
    def __init__(self, config) -> None:
        self.config = config
        self._hasher: Optional[MinHasher] = None

    def __getstate__(self):
        return {"config": self.config, "_hasher": None}

    def process(self, doc: Dict):
        if self._hasher is None:
            self._hasher = MinHasher(self.config)
        for band, digest in self._hasher.text_band_keys(doc["text"]):
            yield (int.from_bytes(digest, "little") << 10) + band, doc["id"]   # int keys (see stable_key)


class MinHashDeduplicate(beam.PTransform):
    """Near-duplicate clusters (MinHash LSH); one document per cluster survives (the smallest id)."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config

    def expand(self, docs):
        edges = (docs | "Bands" >> beam.ParDo(_MinHashBands(self.config))
                 | "Buckets" >> beam.GroupByKey()
                 | "Stars" >> beam.FlatMap(lambda kv: star_edges(kv[1])))
        distinct = group_by(edges, "Edges", key=lambda e: e) | "Distinct" >> beam.Map(lambda group: group[0])
        # One union-find over the edges: only documents sharing a bucket with another are in it.
        removals = (distinct | "OneKey" >> beam.Map(lambda e: (0, e)) | "AllEdges" >> beam.GroupByKey()
                    | "Clusters" >> beam.FlatMap(lambda kv: [(d, r) for d, r in cluster_roots(kv[1]).items()
                                                             if d != r]))

        def decide(item):
            _, found, survivors = item
            for doc in found:
                if survivors:
                    yield from _drop(doc, "minhash_dedup", "near_duplicate", f"survivor {survivors[0]}")
                else:
                    yield from _keep(doc, "minhash_dedup", count_words(doc["text"]))

        return join_by_id(docs, removals, "MinHash") | "Decide" >> beam.FlatMap(decide)


class ExactSubstringDeduplicate(beam.PTransform):
    """Cuts spans longer than ``max_shared_tokens`` tokens that occur earlier in the corpus."""

    def __init__(self, config) -> None:
        super().__init__()
        self.window = config.window

    def expand(self, docs):
        window = self.window
        marks = (docs | "Windows" >> beam.FlatMap(lambda d: ((int.from_bytes(key, "little"), (d["id"], start))
                                                             for key, start in window_keys(d["text"], window)))
                 | "Occurrences" >> beam.GroupByKey()
                 | "LaterOnes" >> beam.FlatMap(lambda kv: later_occurrences(kv[1])))

        def cut(item):
            _, found, starts = item
            for doc in found:
                words = count_words(doc["text"])
                text = remove_marked(doc["text"], starts, window) if starts else doc["text"]
                if not text:
                    yield from _drop(doc, "exact_substring_dedup", "all_text_duplicated")
                else:
                    yield from _keep({**doc, "text": text}, "exact_substring_dedup", words,
                                     "spans_removed" if starts else "kept")

        return join_by_id(docs, marks, "Exact") | "Cut" >> beam.FlatMap(cut)


class KeepOnePerKey(beam.PTransform):
    """One document per ``key(doc)``, the first by ``order``; the others are dropped as ``reason``
    with ``detail(survivor)``."""

    def __init__(self, stage: str, key: Callable, order: Callable, reason: str, detail: Callable) -> None:
        super().__init__()
        self.stage, self.key, self.order, self.reason, self.detail = stage, key, order, reason, detail

    def expand(self, docs):
        stage, order, reason, detail = self.stage, self.order, self.reason, self.detail

        def keep_first(group):
            group = sorted(group, key=order)
            yield from _keep(group[0], stage, count_words(group[0]["text"]))
            for doc in group[1:]:
                yield from _drop(doc, stage, reason, detail(group[0]))

        return group_by(docs, stage, key=self.key) | "KeepFirst" >> beam.FlatMap(keep_first)


class DeduplicateIds(KeepOnePerKey):
    """One document per id, the smallest (url, text): rows of a JSON Lines file that give the same
    ``id`` (``"1"`` and ``1`` included, or an id equal to another row's line number) were two
    documents under one id, which the deduplication stages key clusters and marks by (two copies
    both survived MinHash; one page's repeated spans were cut from the other's text)."""

    def __init__(self) -> None:
        super().__init__("unique_ids", key=lambda d: d["id"], order=lambda d: (d["url"], d["text"]),
                         reason="duplicate_id", detail=lambda survivor: f"the id of {survivor['url']} too")


class DeduplicateUrls(KeepOnePerKey):
    """One document per normalised URL (the smallest id), as RefinedWeb deduplicates URLs across dumps."""

    def __init__(self) -> None:
        super().__init__("url_dedup", key=lambda d: normalize_url(d["url"]), order=lambda d: d["id"],
                         reason="duplicate_url", detail=lambda survivor: f"survivor {survivor['id']}")


def _sum_events(group: List[Tuple]) -> Tuple:
    return group[0][0], tuple(map(sum, zip(*(counts for _, counts in group))))


@checks_number_arguments()
class RefineWeb(beam.PTransform):
    """Every stage in order (see the module docstring); returns ``{"doc", "drop", "event"}`` with
    the events summed per (stage, outcome)."""

    def __init__(self, patterns: Sequence[str], config: RefineConfig = RefineConfig(), input_groups: int = 8) -> None:
        super().__init__()
        self.patterns, self.config, self.input_groups = list(patterns), config, input_groups

    def expand(self, pipeline):
        cfg = self.config
        stages = [("Read", lambda: ReadWebPages(self.patterns, cfg.max_page_bytes, self.input_groups)),
                  ("RefineDocuments", lambda: beam.ParDo(_RefineDocuments(cfg))), ("unique_ids", DeduplicateIds),
                  ("minhash_dedup", lambda: MinHashDeduplicate(cfg.minhash)),
                  ("exact_substring_dedup", lambda: ExactSubstringDeduplicate(cfg.exact_substrings)),
                  ("url_dedup", DeduplicateUrls)]
        docs, dropped, events = pipeline, [], []
        for stage, transform in stages:
            if stage not in CORPUS_STAGES or cfg.runs(stage):
                out = split_tagged(docs | stage >> transform(), stage)
                docs = out[DOC]
                dropped.append(out[DROP])
                events.append(out[EVENT])
        all_events = tuple(events) | "AllEvents" >> beam.Flatten()
        summed = group_by(all_events, "Events", key=lambda e: e[0]) | "SumEvents" >> beam.Map(_sum_events)
        return {DOC: docs, DROP: tuple(dropped) | "AllDropped" >> beam.Flatten(), EVENT: summed}


@checks_number_arguments()
class WriteJsonShards(beam.PTransform):
    """JSON Lines in ``num_shards`` files ``<prefix>-SSSSS-of-NNNNN.jsonl``, each sorted by
    ``sort_key``: the same records give byte-identical files on every runner (WriteToText needs
    side inputs, which not every runner has)."""

    def __init__(self, prefix: str, num_shards: int, sort_key: Callable[[Dict], Any]) -> None:
        super().__init__()
        self.prefix, self.num_shards, self.sort_key = prefix, num_shards, sort_key

    def expand(self, records):
        prefix, shards, sort_key = self.prefix, self.num_shards, self.sort_key

        def write(item):
            shard, rows = item
            path = f"{prefix}-{shard:05d}-of-{shards:05d}.jsonl"
            with FileSystems.create(path) as f:
                for row in sorted(rows, key=sort_key):
                    f.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
            yield path

        return (records | "Shard" >> beam.Map(lambda r: (zlib.crc32(repr(sort_key(r)).encode("utf-8")) % shards, r))
                | "ByShard" >> beam.GroupByKey() | "Write" >> beam.FlatMap(write))


@dataclasses.dataclass(frozen=True)
class RunnerConfig(DictConfig):
    """Where the Beam pipeline runs.

    ``direct``: the DirectRunner with ``workers`` processes (``multi_processing``); ``dask``: Beam's
    Dask runner on the ``dask.distributed`` scheduler at ``dask_address`` or, without one, on a
    local cluster of ``workers`` processes started for the run; ``beam``: ``pipeline_args`` as they
    are (``--runner=DataflowRunner --project=... --region=... --temp_location=gs://...``, or
    ``--runner=FlinkRunner`` / ``SparkRunner`` with their options)."""

    runner: str = "direct"
    workers: int = 2
    dask_address: Optional[str] = None
    pipeline_args: Tuple[str, ...] = ()
    output_shards: int = 4        # files per output; the same on every runner, so outputs compare

    def validate(self) -> None:
        check_choice("runner", self.runner, RUNNERS)
        if self.runner != "dask":
            self.require_defaults(["dask_address"], "with runner='dask'")
        if self.runner == "beam" or self.dask_address:   # the runner's cluster has its own workers
            self.require_defaults(["workers"], "with runner='direct' or a local dask cluster (no dask_address)")


def _pipeline(runner: RunnerConfig):
    """(beam.Pipeline, a function that releases what was started for it)."""
    if runner.runner == "direct":
        options = PipelineOptions(["--direct_running_mode=multi_processing",
                                   f"--direct_num_workers={runner.workers}", *runner.pipeline_args])
        return beam.Pipeline(runner="DirectRunner", options=options), lambda: None
    if runner.runner == "dask":
        from apache_beam.runners.dask.dask_runner import DaskRunner  # dask is only needed for this runner

        cluster = None
        address = runner.dask_address
        if address is None:
            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=runner.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            address = cluster.scheduler_address
        # The runner object, not --runner (2.61 does not know the name) and no --runner flag in the
        # options (they are forwarded to distributed.Client, which rejects it).
        options = PipelineOptions([f"--dask_client_address={address}", *runner.pipeline_args])
        return beam.Pipeline(runner=DaskRunner(), options=options), (cluster.close if cluster else (lambda: None))
    return beam.Pipeline(options=PipelineOptions(list(runner.pipeline_args))), lambda: None


@checks_number_arguments()
def build_refinement(pipeline, inputs: Sequence[str], output_dir: str, config: RefineConfig,
                     num_shards: int = 4, input_groups: int = 8) -> None:
    """Adds the refinement of ``inputs`` and its writers to ``pipeline`` (``input_groups``: see
    ``ReadWebPages``; the output does not depend on it)."""
    out = pipeline | "RefineWeb" >> RefineWeb(inputs, config, input_groups)
    (out[DOC] | "DocFields" >> beam.Map(lambda d: {"id": d["id"], "url": d["url"], "text": d["text"]})
     | "WriteDocs" >> WriteJsonShards(os.path.join(output_dir, "refined", "documents"), num_shards,
                                      sort_key=lambda d: d["id"]))
    (out[DROP] | "WriteDropped" >> WriteJsonShards(os.path.join(output_dir, "rejected", "rejected"), num_shards,
                                                   sort_key=lambda d: (d["stage"], d["id"])))
    (out[EVENT] | "EventFields" >> beam.Map(lambda kv: {"stage": kv[0][0], "outcome": kv[0][1], "documents": kv[1][0],
                                                        "words_in": kv[1][1], "words_out": kv[1][2]})
     | "WriteEvents" >> WriteJsonShards(os.path.join(output_dir, "events", "events"), 1,
                                        sort_key=lambda e: (e["stage"], e["outcome"])))


def run_refinement(inputs: Sequence[str], output_dir: str, config: RefineConfig = RefineConfig(),
                   runner: RunnerConfig = RunnerConfig(), pipeline=None) -> Dict[str, Any]:
    """Runs the refinement to completion and writes ``report.json`` / ``report.png``; returns the
    report. With ``pipeline`` (e.g. TFX's Beam pipeline), runs on it instead of ``runner``."""
    require_pattern_free_folder(output_dir, "the output folder")
    inputs = expand_inputs(inputs)
    require_inputs_outside(inputs, [os.path.join(output_dir, name) for name in REPLACED_OUTPUTS],
                           "this run deletes and rewrites it")
    # Held for the whole run: a second refinement into the folder would delete this one's shards below.
    with output_folder_lock(output_dir):
        return _run_refinement(inputs, output_dir, config, runner, pipeline)


def _run_refinement(inputs: List[str], output_dir: str, config: RefineConfig, runner: RunnerConfig,
                    pipeline) -> Dict[str, Any]:
    if pipeline is None and (runner.runner == "direct" or (runner.runner == "dask" and runner.dask_address is None)):
        ensure_open_files(f"a local {runner.runner} run with {runner.workers} workers")   # before anything is deleted
    # The files the config names (blocklist, URL words, language model) are read here first: read
    # only in Beam's workers, a missing or corrupt one failed there, as a RuntimeError (exit 1).
    # The model is only checked (in a bounded child, with the languages it knows): the driver
    # refines nothing, so it need not load it.
    refiner = DocumentRefiner(config)
    if "language" not in config.skip_stages:
        refiner.language.check()
    for stale in REPLACED_FOLDERS:       # a re-run must not mix shards of two runs
        folder = os.path.join(output_dir, stale)
        if FileSystems.exists(folder):
            FileSystems.delete([folder])
    started = time.monotonic()
    release = lambda: None   # noqa: E731
    if pipeline is None:
        pipeline, release = _pipeline(runner)
    try:
        # On the Dask runner the input groups are its partitions: one per worker keeps the task graph
        # small (every Flatten adds partitions up); the other runners rebalance after Reshuffle.
        build_refinement(pipeline, inputs, output_dir, config, runner.output_shards, input_groups=runner.workers)
        result = pipeline.run()
        result.wait_until_finish()
        client = getattr(result, "client", None)   # the Dask runner's distributed.Client
        if client is not None:
            client.close()
    finally:
        release()
    return write_report(output_dir, inputs=inputs, runner=runner.to_dict(), config=config.to_dict(),
                        seconds=time.monotonic() - started)


def read_refined_documents(output_dir: str) -> Iterable[Dict]:
    """The refined documents of a finished run (any order)."""
    for match in FileSystems.match([os.path.join(output_dir, "refined", "documents*.jsonl")])[0].metadata_list:
        with FileSystems.open(match.path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
