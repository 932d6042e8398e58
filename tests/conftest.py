"""Shared fixtures. Two logical CPU devices are configured before TensorFlow initializes so that
MirroredStrategy runs a real two-replica step on a machine without accelerators."""
import base64
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Under `make test` each pytest-xdist worker gets its share of the cores for TensorFlow's intra-op
# pool (read when TensorFlow starts its runtime, so set before anything imports it): two workers that
# each used every core oversubscribed them. Measured on 2 cores, two fine-tunings run side by side
# (100 MiniLM steps each): 121 s and 178 s with a full pool each, 119 s and 124 s with one thread each.
_XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _XDIST_WORKERS > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _XDIST_WORKERS)))

import pytest  # noqa: E402
from xdist.scheduler import LoadFileScheduling  # noqa: E402

from rw_tf.training.strategy import split_cpu  # noqa: E402

LOGICAL_CPUS = split_cpu(2)


@pytest.fixture(scope="session")
def pydoc_documents():
    from rw_tf.data.corpus import embedded_corpus

    return embedded_corpus(include_stdlib_docstrings=False)


@pytest.fixture(scope="session")
def vocab_file(tmp_path_factory, pydoc_documents):
    from rw_tf.tokenization import learn_vocabulary, write_vocabulary

    vocab = learn_vocabulary((s for d in pydoc_documents for s in d), vocab_size=2000)
    return write_vocabulary(vocab, str(tmp_path_factory.mktemp("vocab") / "vocab.txt"))


@pytest.fixture(scope="session")
def tokenizer(vocab_file):
    from rw_tf.tokenization import WordPieceTokenizer

    return WordPieceTokenizer(vocab_file)


@pytest.fixture(scope="session")
def logical_cpus():
    return LOGICAL_CPUS


# The one end-to-end pipeline run of the suite (tiny sizes, Python's documentation as the corpus;
# the refined web corpus has its own tests); serving tests reuse what it pushed.
TINY_PIPELINE = dict(corpus="embedded", pretrain_train_steps=100, finetune_train_steps=60, finetune_max_per_class=600,
                     mlm_accuracy_lower_bound=0.03, beam_direct_running_mode="in_memory", vocab_size=3000)


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    from rw_tf_pipeline.configs import PipelineConfig
    from rw_tf_pipeline.local_runner import run_all

    config = PipelineConfig(root=str(tmp_path_factory.mktemp("pipeline")), **TINY_PIPELINE)
    return config, run_all(config, ["pretrain", "finetune"])


@pytest.fixture(scope="session")
def tiny_general_model(tmp_path_factory):
    """A few steps of general pretraining (tiny preset, 40 documents, length 64): a start point for
    domain pretraining, the domain pipeline kind and the recipe's tests. Returns the output folder."""
    from rw_tf.tasks import PretrainingTask, PretrainingTaskConfig
    from rw_tf.training import run_task

    out = str(tmp_path_factory.mktemp("general"))
    task = PretrainingTask(PretrainingTaskConfig(max_documents=40, max_sequence_length=64, target_words=12))
    run_task(task, task.trainer_config(epochs=1, steps_per_epoch=3, batch_size=8, keep_epoch_checkpoints=False),
             out, verbose=0)
    return out


# `make test` shares the files among pytest-xdist workers (--dist loadfile). Files whose tests read
# the same expensive session fixture go to one worker so that it is built once; a test that uses
# one of these fixtures from a file not listed here fails (see pytest_collection_modifyitems).
def write_interactions(data, folder, extra_items=b"", extra_users=b""):
    """``data`` (an ``Interactions``) as the catalogue and histories files a user gives, plus raw lines."""
    items, users = folder / "items.jsonl", folder / "interactions.jsonl"
    items.write_bytes(b"".join(json.dumps({"item": i, "text": t}).encode() + b"\n"
                               for i, t in zip(data.items, data.item_texts)) + extra_items)
    users.write_bytes(b"".join(json.dumps({"user": u, "items": [data.items[i] for i in h],
                                           "profile": data.user_texts[u]}).encode() + b"\n"
                               for u, h in data.histories.items()) + extra_users)
    return str(items), str(users)


# Lines a user's files may hold that cannot be used, and the reason each is counted under.
BAD_ITEMS = (b'{"item": "two words", "text": "an id with a space"}\n{"item": "", "text": "no id"}\n'
             b'{"item": 7, "text": "a number"}\n{"item": "os", "text": "os again"}\n'
             b'{"item": "blank", "text": " \\u200b "}\n{"item": "none"}\n\xff\xfe\nnot json\n[1]\n')
BAD_USERS = (b'{"user": "x", "items": ["re", "no_such_item", "re", "os", "json"]}\n'   # 1 unknown, 1 repeat: kept
             b'{"user": "x", "items": ["os", "re", "json"]}\n'                          # the same user again
             b'{"user": "short", "items": ["re", "os"]}\n{"user": "y", "items": "re os json"}\n'
             b'{"user": "z", "items": ["re", "os", 3]}\n{"user": "", "items": []}\n'
             b'{"items": ["re", "os", "json"]}\n{"user": "p", "items": ["re", "os", "json"], "profile": 1}\n\xff\n')
BAD_COUNTS = {"invalid_item_id": 3, "duplicate_item": 1, "missing_item_text": 2, "invalid_utf8": 2,
              "invalid_json": 2, "unknown_item_interactions": 1, "repeated_item_interactions": 1,
              "duplicate_user": 1, "users_with_short_history": 1, "invalid_user_row": 5}


def write_image_caption_pairs(rows, folder, extra=b""):
    """``rows`` (``{"image": bytes, "caption", "label"}``) as the JSON Lines file a user gives: odd
    rows' images as files beside it (relative paths), even rows' inline as base64; plus raw lines."""
    (folder / "images").mkdir(exist_ok=True)
    lines = []
    for i, row in enumerate(rows):
        image = f"images/{i}.png" if i % 2 else {"b64": base64.b64encode(row["image"]).decode("ascii")}
        if i % 2:
            (folder / image).write_bytes(row["image"])
        lines.append(json.dumps({"image": image, "caption": row["caption"], "label": row["label"]}).encode())
    (folder / "pairs.jsonl").write_bytes(b"\n".join(lines) + b"\n" + extra)
    return str(folder / "pairs.jsonl")


# Image-caption lines that cannot be used, and the reason each is counted under.
BAD_PAIRS = (b'{"image": "images/missing.png", "caption": "x"}\n{"image": {"b64": "!!"}, "caption": "x"}\n'
             b'{"image": {"b64": "aGVsbG8="}, "caption": "not an image"}\n{"image": "images/1.png", "caption": ""}\n'
             b'{"image": "images/1.png", "caption": "a", "label": true}\n{"image": "images/1.png", "caption": "a", '
             b'"label": [1]}\n{"caption": "no image"}\n{"image": "images", "caption": "a folder"}\nnot json\n\xff\n')
BAD_PAIR_COUNTS = {"image_file_not_found": 2, "invalid_base64": 1, "missing_caption": 1, "invalid_label": 2,
                   "missing_image": 1, "invalid_json": 1, "invalid_utf8": 1,
                   "unsupported image format: only PNG and JPEG are accepted": 1}


SHARED_SESSION_FIXTURES = {
    "pipeline_run": ("test_pipeline.py", "test_serving.py", "test_serving_fuzz.py", "test_serving_hardening.py",
                     "test_tf_serving_ops.py"),
    "tiny_general_model": ("test_pipeline_domain.py", "test_recipe.py"),
}
_SHARED_FIXTURE_OF_FILE = {file: fixture for fixture, files in SHARED_SESSION_FIXTURES.items() for file in files}


# Units (files, or the groups above) whose tests take minutes on 2 cores, heaviest first (measured
# with --durations): under xdist the workers take them first and end on short files, rather than one
# worker running a long file alone at the end. (xdist's own reordering sorts by the number of tests,
# which put files of many quick parametrized checks first.)
HEAVY_UNITS_FIRST = ("test_finetune.py", "pipeline_run", "test_question_answering.py", "test_pretraining.py",
                     "test_jax_backend.py", "test_sentence_embedding.py", "test_distribution.py",
                     "test_architecture.py", "test_refine_pipeline.py", "test_runner.py", "test_xla.py",
                     "test_resume.py", "test_image_text.py", "test_precision.py", "test_recommendation.py",
                     "test_retrieval.py", "test_bert_import.py")


def _unit_rank(item) -> int:
    unit = _SHARED_FIXTURE_OF_FILE.get(item.path.name, item.path.name)
    return HEAVY_UNITS_FIRST.index(unit) if unit in HEAVY_UNITS_FIRST else len(HEAVY_UNITS_FIRST)


class SharedFixtureFileScheduling(LoadFileScheduling):
    """--dist loadfile, with the files of one SHARED_SESSION_FIXTURES entry as one unit."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return _SHARED_FIXTURE_OF_FILE.get(os.path.basename(path), path)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    # (xdist's own --dist loadgroup cannot do this under pytest 9.2: it renames items through
    # Item._nodeid, which pytest 9 no longer reads.)
    if config.getvalue("dist") != "loadfile":
        return None
    config.option.loadscopereorder = False   # keep the collection's order (HEAVY_UNITS_FIRST)
    return SharedFixtureFileScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):   # the order the workers' units are handed out in
        items.sort(key=_unit_rank)
    for item in items:
        for fixture in SHARED_SESSION_FIXTURES.keys() & set(item.fixturenames):
            if _SHARED_FIXTURE_OF_FILE.get(item.path.name) != fixture:
                raise pytest.UsageError(f"{item.nodeid} uses the session fixture {fixture!r}: add its file to "
                                        "SHARED_SESSION_FIXTURES in tests/conftest.py")


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """all-MiniLM-L6-v2's WordPiece vocabulary (it ships in the environment)."""
    from rw_tf.checkpoints import minilm_checkpoint_dir
    from rw_tf.tokenization import WordPieceTokenizer

    return WordPieceTokenizer(os.path.join(minilm_checkpoint_dir(), "vocab.txt"))
