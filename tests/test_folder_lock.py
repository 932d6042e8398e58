"""One run per output folder (``rw_tf.folder_lock``): a second run into a folder that a running
training, refinement, recipe or pipeline writes is refused before it touches anything, and a
folder is free again as soon as its run's process ends, however it ends."""
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time

import pytest

from rw_tf.cli.main import main as cli_main
from rw_tf.errors import UserError
from rw_tf.folder_lock import LOCK_FILE, output_folder_lock

# Forked, not spawned: the child needs none of TensorFlow, and starts in milliseconds.
FORK = multiprocessing.get_context("fork")


def _hold(folder, ready):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # an orderly end: the lock is given back
    with output_folder_lock(folder):
        ready.set()
        time.sleep(120)


@contextlib.contextmanager
def held_by_another_process(folder):
    ready = FORK.Event()
    proc = FORK.Process(target=_hold, args=(str(folder), ready))
    proc.start()
    assert ready.wait(30), "the holder did not take the lock"
    try:
        yield proc
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(30)


def test_a_second_run_is_refused_naming_the_holder_and_the_folder_is_freed_however_the_holder_ends(tmp_path):
    folder = tmp_path / "run"
    with held_by_another_process(folder) as holder:
        with pytest.raises(UserError, match=rf"{folder} is in use by another run: process {holder.pid} on "):
            with output_folder_lock(str(folder)):
                pass
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == holder.pid
    assert not (folder / LOCK_FILE).exists()               # an orderly end deletes the file
    with held_by_another_process(folder) as holder:
        os.kill(holder.pid, signal.SIGKILL)                # no clean-up at all: the kernel frees the lock
        holder.join(30)
        with output_folder_lock(str(folder)):
            assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (folder / LOCK_FILE).exists()


def test_re_entrant_in_one_thread_refused_to_another(tmp_path):
    folder = str(tmp_path / "run")
    refused = []

    def other_thread():
        try:
            with output_folder_lock(folder):
                refused.append(False)
        except UserError as err:
            refused.append(str(err))

    with output_folder_lock(folder):
        with output_folder_lock(folder):                   # a pipeline run holds its root, so does each pipeline
            pass
        assert os.path.exists(os.path.join(folder, LOCK_FILE))   # the outer hold is still there
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert refused and "in use by another thread of this process" in refused[0]
    assert not os.path.exists(os.path.join(folder, LOCK_FILE))
    with output_folder_lock("gs://bucket/run"):            # object stores have no locks: nothing to take
        pass


def _contend(folder, rounds, results):
    inside, refusals = os.path.join(folder, "inside"), 0
    for _ in range(rounds):
        try:
            with output_folder_lock(folder):
                fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)   # fails if another holder is in
                os.close(fd)
                os.unlink(inside)
        except UserError:
            refusals += 1
        except FileExistsError:
            results.put("two holders at once")
            return
    results.put(refusals)


def test_never_two_holders_while_holders_come_and_go(tmp_path):
    # Each holder deletes the lock file as it leaves: a process that opened the file just before
    # must not take a lock on the deleted file while a third locks the new one.
    folder, rounds = str(tmp_path / "run"), 1000
    os.makedirs(folder)
    results = FORK.Queue()
    procs = [FORK.Process(target=_contend, args=(folder, rounds, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert "two holders at once" not in outcomes, outcomes
    assert sum(4 * [rounds]) > sum(outcomes) > 0           # some entered, some were refused
    assert os.listdir(folder) == []


@pytest.mark.parametrize("command", [
    ["pretrain", "--preset", "tiny", "--output-dir", "{out}"],
    ["finetune", "--task", "classification", "--output-dir", "{out}"],
    ["kg", "train", "--dataset", "nations", "--epochs", "1", "--output-dir", "{out}"],
    ["recipe", "--output-dir", "{out}"],
    ["refine", "{pages}", "{out}"],
    ["pipeline", "run", "--root", "{out}"],
    ["pipeline", "prepare", "--root", "{out}"],
], ids=lambda c: " ".join(c[:2]))
def test_every_command_that_writes_a_folder_refuses_one_in_use_and_leaves_it_as_it_was(command, tmp_path, capsys):
    out, pages = tmp_path / "out", tmp_path / "pages.jsonl"
    pages.write_text(json.dumps({"url": "https://a.example/", "text": "Some words. " * 40}) + "\n")
    # What a running job has written: a training backup, refined shards, a pipeline's store.
    files = {"backup/state.json": '{"global_step": 7}', "refined/documents-00000-of-00001.jsonl": "{}\n",
             "metadata.sqlite": "x"}
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    with held_by_another_process(out) as holder:
        started = time.monotonic()
        code = cli_main([part.format(out=out, pages=pages) for part in command])
        err = capsys.readouterr().err
        seconds = time.monotonic() - started
    assert code == 2, err
    assert f"is in use by another run: process {holder.pid} on " in err and "hint: wait for that run" in err
    assert {name: (out / name).read_text() for name in files} == files
    assert sorted(p.name for p in out.iterdir()) == ["backup", "metadata.sqlite", "refined"]
    assert seconds < 60, f"refused only after {seconds:.0f} s of work"


def test_a_file_where_the_folder_should_be_is_a_user_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for folder, message in ((tmp_path / "file", "is a file, not a folder"),
                            (tmp_path / "file" / "run", "a name on its path is a file")):
        with pytest.raises(UserError, match=message):
            with output_folder_lock(str(folder)):
                pass
    assert cli_main(["pretrain", "--preset", "tiny", "--output-dir", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
