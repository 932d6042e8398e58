"""Line-based inputs are read in bounded memory: one reader (``rw_tf.data.lines.bounded_lines``)
for every line format, lines over the limit counted or refused by name, and ``rw-tf embed``
streaming its input instead of holding it; the command line's standard streams closed, broken or
unable to encode."""
import collections
import io
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

import rw_tf.cli.embed as embed_cli
import rw_tf.data.lines as lines
from rw_tf.cli.main import main
from rw_tf.cli.streams import READER_GONE_EXIT
from rw_tf.data.corpus import read_text_files
from rw_tf.data.jsonl import read_jsonl_objects, write_jsonl
from rw_tf.data.lines import bounded_lines
from rw_tf.knowledge.entity_linking import read_alias_table
from rw_tf.knowledge.graph import load_triples
from rw_tf.tasks.recommendation import read_items
from rw_tf.tokenization import write_vocabulary
from rw_tf.tokenization.wordpiece import read_vocabulary


def readline_reference(stream, limit):
    """The same contract written with ``readline(size)`` (what the refine readers used), line ends dropped."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(limit)
                if not rest or rest.endswith(b"\n"):
                    break
            yield line[:limit], True
        else:
            yield line[:-1] if line.endswith(b"\n") else line, False


def test_bounded_lines_agrees_with_the_readline_reference(monkeypatch):
    rng = random.Random(7)
    for chunk in (1, 3, 64):
        monkeypatch.setattr(lines, "_CHUNK_BYTES", chunk)
        for _ in range(800):
            data = bytes(rng.choice(b"ab\n") for _ in range(rng.randint(0, 60)))
            limit = rng.randint(1, 9)
            assert list(bounded_lines(io.BytesIO(data), limit)) == list(readline_reference(io.BytesIO(data), limit))
    with pytest.raises(ValueError, match="limit must be positive"):
        list(bounded_lines(io.BytesIO(b"x"), 0))


def test_a_line_of_many_megabytes_costs_the_limit_not_the_line():
    data = io.BytesIO(b"short\n" + b"y" * 30_000_000 + b"\nlast")
    tracemalloc.start()
    try:
        found = [(len(line), too_long) for line, too_long in bounded_lines(data, limit=65_536)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == [(5, False), (65_536, True), (4, False)]
    assert peak < 4_000_000, peak   # the whole line would be 30 MB (and twice that decoded)


def test_every_line_reader_counts_or_names_a_line_over_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 1000)
    long_text = "z" * 5000
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "kept", "label": 1}) + "\n" + json.dumps({"text": long_text}) + "\n"
                    + json.dumps({"text": "also kept", "label": 0}))
    rejects = collections.Counter()
    assert [r["text"] for r in read_jsonl_objects(str(rows), rejects)] == ["kept", "also kept"]
    assert rejects == {"line_too_long": 1}

    aliases = tmp_path / "aliases.tsv"
    aliases.write_text(f"paris\tParis\n{long_text}\tParis\nlondon\tLondon\n")
    found, rejects = read_alias_table(str(aliases), {"Paris": 0, "London": 1})
    assert found == {"paris": 0, "london": 1} and rejects == {"line_too_long": 1}

    triples = tmp_path / "triples.tsv"
    triples.write_text(f"a\tr\tb\n{long_text}\tr\tb\nb\tr\tc\n")
    graph = load_triples(str(triples))
    assert graph.triples.shape == (2, 3) and graph.rejects.counts == {"line_too_long": 1}

    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"item": "i1", "text": "t"}) + "\n" + json.dumps({"item": "i2", "text": long_text}))
    with pytest.raises(ValueError, match=f"{items} line 2 is longer than 1000 bytes"):
        read_items(str(items))


class LengthEmbedder(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed_text(self, text):
        length = tf.cast(tf.strings.length(text), tf.float32)
        return {"embedding": tf.stack([length, -length, tf.ones_like(length)], axis=1)}


@pytest.fixture(scope="module")
def length_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("length_model")
    module = LengthEmbedder()
    tf.saved_model.save(module, str(root / "1"), signatures={"embed_text": module.embed_text})
    return str(root)


def embed_peak_bytes(model, path, output):
    tracemalloc.start()
    try:
        assert main(["embed", "--model", model, "--input", str(path), "--output", str(output),
                     "--batch-size", "512"]) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_embed_streams_its_input_in_bounded_memory(length_model, tmp_path, capsys):
    def write_input(path, n):
        with open(path, "w") as f:
            for i in range(n):
                f.write(f"text number {i} " + "w" * (i % 50) + "\n")
        with open(path, "ab") as f:
            f.write(b"\n\xff\n")  # an empty line and a byte that is not UTF-8
        return [(f"text number {i} " + "w" * (i % 50)).strip() for i in range(n)]

    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    write_input(small, 20_000)
    texts = write_input(large, 200_000)
    peak_small = embed_peak_bytes(length_model, small, tmp_path / "small.npy")
    peak_large = embed_peak_bytes(length_model, large, tmp_path / "large.npy")
    err = capsys.readouterr().err
    assert "embedded 200000 texts (3 dims, signature embed_text); skipped 1 empty_line, 1 invalid_utf8" in err
    # Ten times the input, about the same peak: nothing grows with the number of rows.
    assert peak_large < 1.5 * peak_small + 1_000_000, (peak_small, peak_large)
    vectors = np.load(tmp_path / "large.npy")
    lengths = np.array([len(t) for t in texts], np.float32)
    np.testing.assert_array_equal(vectors, np.stack([lengths, -lengths, np.ones_like(lengths)], axis=1))
    # JSON Lines carry the same rows, and a failed run leaves no partial output behind.
    assert main(["embed", "--model", length_model, "--input", str(small), "--output", str(tmp_path / "s.jsonl")]) == 0
    rows = [json.loads(line) for line in open(tmp_path / "s.jsonl")]
    assert len(rows) == 20_000 and rows[5] == {"text": "text number 5 wwwww", "embedding": [19.0, -19.0, 1.0]}
    np.testing.assert_array_equal(np.array([r["embedding"] for r in rows], np.float32), np.load(tmp_path / "small.npy"))
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_two_runs_writing_one_output_never_share_a_file(tmp_path):
    """Two `rw-tf embed --output x.npy` at once both wrote `x.npy.partial`: the second truncated the
    first's rows, and the first then failed renaming a file the second had already renamed."""
    from rw_tf.cli.embed import EmbeddingWriter

    for name in ("x.npy", "x.jsonl"):
        output = tmp_path / name
        first, second = EmbeddingWriter(str(output)), EmbeddingWriter(str(output))
        first.write(["a", "b"], np.array([[1, 2], [3, 4]], np.float32))
        second.write(["c"], np.array([[5, 6]], np.float32))
        second.close()
        first.write(["d"], np.array([[7, 8]], np.float32))
        first.close()                                       # the last to finish wins, whole
        if name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(output), [[1, 2], [3, 4], [7, 8]])
        else:
            assert [json.loads(line)["text"] for line in open(output)] == ["a", "b", "d"]
        aborted = EmbeddingWriter(str(output))
        aborted.write(["e"], np.array([[9, 9]], np.float32))
        aborted.abort()                                     # a failed run leaves the output as it was
        assert os.stat(output).st_mode & 0o777 == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl", "x.npy"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_endless_devices_and_oversized_files_are_refused_by_name(tmp_path, monkeypatch, capsys):
    """`/dev/zero` given as an input: the line readers scanned it forever (`rw-tf kg train --train
    /dev/zero` ran until killed), and the whole-file readers filled memory (`rw-tf refine --config
    /dev/zero` grew past 9 GB in 24 s); `tf.io.gfile` read a corpus or a vocabulary on a device as
    empty."""
    monkeypatch.setattr(lines, "MAX_SCANNED_LINE_BYTES", 3 << 20)
    with open("/dev/zero", "rb") as zeros, pytest.raises(lines.EndlessLineError, match="zeros has a line with no"):
        list(bounded_lines(zeros, limit=100, source="zeros"))
    # A long line that does end is still passed over and counted, as before.
    assert [t for _, t in bounded_lines(io.BytesIO(b"x" * (2 << 20) + b"\nok\n"), limit=100)] == [True, False]
    with pytest.raises(ValueError, match=r"^thing /dev/zero holds more than 1,000 bytes, too big$"):
        lines.read_bounded("/dev/zero", 1000, "thing", ", too big")
    big = tmp_path / "big.txt"
    big.write_bytes(b"A sentence that is long enough to keep. " * 100)
    with pytest.raises(ValueError, match="corpus file .*big.txt holds more than 3,000 bytes"):
        read_text_files([str(big)], max_bytes=3000)

    triples = tmp_path / "t.tsv"
    triples.write_text("a\tr\tb\nb\tr\tc\nc\tr\ta\n", encoding="utf-8")
    for argv, message in (
            (["kg", "train", "--train", "/dev/zero", "--test", str(triples)], "/dev/zero has a line with no end"),
            (["finetune", "--task", "classification", "--train", "/dev/zero", "--eval", str(triples)],
             "/dev/zero has a line with no end"),
            (["refine", "--config", "/dev/zero", str(triples), str(tmp_path / "r")], "refine settings /dev/zero holds"),
            (["pipeline", "run", "--config", "/dev/zero"], "pipeline settings /dev/zero holds more than"),
            (["serve", "--model-config-file", "/dev/zero"], "text-proto file /dev/zero holds more than"),
            (["pretrain", "--vocab-file", "/dev/zero", "--output-dir", str(tmp_path / "p")],
             "vocabulary file /dev/zero holds more than")):
        if argv[0] in ("kg", "finetune"):
            argv += ["--output-dir", str(tmp_path / "out")]
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err


def test_pipes_are_read_like_files(tmp_path):
    """`--input <(zcat corpus.gz)`: tf.io.gfile cannot read a pipe ("Illegal seek")."""
    def piped(content):
        path = str(tmp_path / f"fifo{len(list(tmp_path.iterdir()))}")
        os.mkfifo(path)
        threading.Thread(target=lambda: open(path, "wb").write(content), daemon=True).start()
        return path

    text = "First sentence of the piped document here. Second sentence of the piped document here."
    docs = read_text_files([piped(text.encode())])
    assert docs == [["First sentence of the piped document here.", "Second sentence of the piped document here."]]
    assert read_vocabulary(piped(b"[PAD]\n[UNK]\nword\n")) == ["[PAD]", "[UNK]", "word"]
    rejects = collections.Counter()
    # A byte order mark (Windows editors) is not JSON: the first row was rejected.
    assert list(read_jsonl_objects(piped(b'\xef\xbb\xbf{"text": "a"}\nnot json\n\xff\n'), rejects)) == [{"text": "a"}]
    assert rejects == {"invalid_json": 1, "invalid_utf8": 1}
    assert load_triples(piped(b"a\tr\tb\n")).triples.tolist() == [[0, 0, 1]]


# --- standard streams in the states shells and schedulers leave them in (rw_tf/cli/streams.py) ---

def test_a_reader_that_leaves_ends_the_command_quietly(length_model, tmp_path, monkeypatch, capsys):
    """`rw-tf embed ... | head`: the pipe's reader leaves after one line; before, the user got
    "unexpected BrokenPipeError" and a traceback log."""
    source = tmp_path / "many.txt"
    source.write_text("".join(f"text {i}\n" for i in range(50_000)))
    read_end, write_end = os.pipe()
    os.close(read_end)
    stdout = os.fdopen(write_end, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        assert main(["embed", "--model", length_model, "--input", str(source)]) == READER_GONE_EXIT == 141
    finally:
        monkeypatch.undo()
        stdout.close()                  # (its descriptor now points at /dev/null: nothing left to flush)
    assert capsys.readouterr().err == ""
    # A broken pipe elsewhere (a socket) is still reported, not taken for the reader leaving.
    monkeypatch.setattr(embed_cli, "load_embedder", lambda *a: (_ for _ in ()).throw(BrokenPipeError(32, "socket")))
    assert main(["embed", "--model", length_model, "--text", "a"]) == 1
    assert "unexpected BrokenPipeError" in capsys.readouterr().err


def test_terminals_that_cannot_write_every_character(length_model, tmp_path, monkeypatch, capsys):
    """PYTHONIOENCODING=ascii or a Latin-1 locale: before, UnicodeEncodeError after the work was done."""
    texts = ["北京 café", "emoji 😀 here", "plain"]
    out, err = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="ascii"))
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(err, encoding="latin-1"))
    assert main(["embed", "--model", length_model, "--text", *texts]) == 0
    assert main(["embed", "--model", length_model, "--text", "x", "--output", str(tmp_path / "北京.npy")]) == 0
    sys.stdout.flush()
    sys.stderr.flush()
    rows = [json.loads(line) for line in out.getvalue().decode("ascii").splitlines()]     # JSON, escaped
    assert [r["text"] for r in rows] == texts and rows[1]["embedding"] == [15.0, -15.0, 1.0]   # bytes
    assert "-> " + str(tmp_path / "\\u5317\\u4eac.npy") in err.getvalue().decode("latin-1")
    assert np.load(tmp_path / "北京.npy").tolist() == [[1.0, -1.0, 1.0]]


def test_arguments_that_are_not_utf8_are_refused_by_value(tmp_path, capsys):
    """A path the shell passes with bytes that are not UTF-8: TensorFlow's file system and every
    message naming the path failed on it ("surrogates not allowed")."""
    source = tmp_path / "in.txt"
    source.write_text("This sentence is about cafés and trains. Another sentence follows it here.\n\n" * 30)
    bad = str(tmp_path) + "/v\udcff.txt"
    assert main(["vocab", "--input", str(source), "--output", bad, "--vocab-size", "200"]) == 2
    assert f"argument {bad!r} is not UTF-8 text (byte 0xff at character {len(str(tmp_path)) + 2})" in \
        capsys.readouterr().err
    assert os.listdir(tmp_path) == ["in.txt"]
    # A pattern in UTF-8 that matches such a name: TensorFlow's glob raised UnicodeDecodeError and
    # Beam's coder "surrogates not allowed" (rw-tf refine), neither naming the file.
    folder = tmp_path / "d\udcff"
    os.mkdir(folder)
    shutil.copy(source, folder / "a.txt")
    shutil.copy(source, folder / "a.html")
    texts, pages = str(tmp_path / "d*" / "*.txt"), str(tmp_path / "d*" / "*.html")
    for name, pattern, argv in (("a.txt", texts, ["vocab", "--input", texts, "--output", str(tmp_path / "v.txt")]),
                                ("a.html", pages, ["refine", pages, str(tmp_path / "refined")])):
        assert main(argv) == 2
        assert (f"{str(folder / name)!r} is not UTF-8 text (byte 0xff at character {len(str(tmp_path)) + 2}), "
                f"matched by {pattern!r}") in capsys.readouterr().err


def test_a_failure_report_survives_a_log_folder_that_cannot_be_written(length_model, tmp_path, monkeypatch, capsys):
    """RW_TF_LOG_DIR under a file: before, writing the traceback raised from main's own handler."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("RW_TF_LOG_DIR", str(tmp_path / "file" / "logs"))
    monkeypatch.setattr(embed_cli, "load_embedder", lambda *a: (_ for _ in ()).throw(RuntimeError("model broke")))
    assert main(["embed", "--model", length_model, "--text", "a"]) == 1
    message = capsys.readouterr().err
    path = message.split("the traceback is in ")[1].strip()
    assert "unexpected RuntimeError: model broke" in message and os.path.dirname(path) == tempfile.gettempdir()
    assert "RuntimeError: model broke" in open(path).read()
    os.remove(path)


CLOSED_STREAMS_SCRIPT = """
import os, sys
from rw_tf.cli.main import main
from rw_tf.cli.streams import READER_GONE_EXIT
model, out = sys.argv[1:]
codes = [main(["embed", "--model", model, "--input", "-", "--output", out]),   # nothing to read
         main(["embed", "--model", model, "--text", "a"]),                  # nowhere to write the result
         main(["embed", "--model", model, "--text", "a", "--output", out])]
with open(out + ".later", "w") as later:      # a file opened now must not take descriptor 0 or 1
    sys.stdout.write("a progress bar\\n")
    sys.stdout.flush()
    os.write(1, b"a C++ log line\\n")
    print(codes, later.fileno(), file=sys.stderr)
"""


def test_closed_standard_streams(length_model, tmp_path):
    """`rw-tf ... <&- >&-` (or a scheduler that starts it so): before, AttributeError on sys.stdin
    and sys.stdout, and the next file opened took descriptor 0 or 1."""
    out = str(tmp_path / "e.jsonl")
    run = subprocess.run(["sh", "-c", 'exec "$0" -c "$1" "$2" "$3" <&- >&-', sys.executable, CLOSED_STREAMS_SCRIPT,
                          length_model, out], stderr=subprocess.PIPE, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert "rw-tf embed: error: standard input is closed: there is nothing to read from '-'" in run.stderr
    assert "rw-tf embed: error: standard output is closed: the result would be lost (hint: give --output" in run.stderr
    codes, later_fd = lines[-1].rsplit(" ", 1)
    assert codes == "[2, 2, 0]" and int(later_fd) > 2
    assert [json.loads(line) for line in open(out)] == [{"text": "a", "embedding": [1.0, -1.0, 1.0]}]
    assert open(out + ".later").read() == ""


KILLED_WRITER = """
import sys, time
from rw_tf.data.jsonl import write_jsonl
def rows():
    for i in range(10 ** 9):
        yield {"row": i}
        if i == 100_000:
            print("writing", flush=True)
            time.sleep(600)
write_jsonl(rows(), sys.argv[1])
"""


def test_files_taken_for_done_are_whole_or_absent(tmp_path):
    """The recipe and the data preparation skip files that exist and TF Serving re-reads its config:
    a file written in place and cut short (an error in its rows, a kill) was taken for complete."""
    path = tmp_path / "rows.jsonl"
    write_jsonl([{"row": "earlier"}], str(path))

    def failing_rows():
        yield {"row": 1}
        raise RuntimeError("the rows failed")

    with pytest.raises(RuntimeError, match="the rows failed"):
        write_jsonl(failing_rows(), str(path))
    assert path.read_text() == '{"row": "earlier"}\n' and os.listdir(tmp_path) == ["rows.jsonl"]

    killed = tmp_path / "killed.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(killed)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"   # 100,001 rows handed to the writer
    finally:
        proc.kill()
        proc.wait()
    assert not killed.exists()                                  # not a short file that looks done
    assert [p.name.split(".")[0] for p in tmp_path.iterdir() if p.name.endswith(".partial")] == ["killed"]
    assert write_vocabulary(["[PAD]", "[UNK]", "word"], str(tmp_path / "vocab.txt")) == str(tmp_path / "vocab.txt")
    assert read_vocabulary(str(tmp_path / "vocab.txt")) == ["[PAD]", "[UNK]", "word"]
    # A symbolic link (like /dev/stdout) and a pipe are written through, not replaced by the rename
    # (which turned `--output /dev/full` into a regular file).
    (tmp_path / "target.jsonl").write_text("")
    os.symlink(tmp_path / "target.jsonl", tmp_path / "link.jsonl")
    write_jsonl([{"row": "through the link"}], str(tmp_path / "link.jsonl"))
    assert os.path.islink(tmp_path / "link.jsonl")
    assert (tmp_path / "target.jsonl").read_text() == '{"row": "through the link"}\n'
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    write_jsonl([{"row": "through the pipe"}], str(fifo))
    reader.join(timeout=60)
    assert received == [b'{"row": "through the pipe"}\n'] and stat.S_ISFIFO(os.stat(fifo).st_mode)


COMPRESSORS = {"gzip": lambda data: __import__("gzip").compress(data),
               "bzip2": lambda data: __import__("bz2").compress(data),
               "xz": lambda data: __import__("lzma").compress(data)}


def test_compressed_text_inputs_are_read_decompressed_and_damage_is_named(length_model, tmp_path, capsys):
    """Every text input reads a gzip, bzip2 or xz file as the text it holds (by content, not name);
    damaged compressed data (cut, CRC or length trailer that does not match) is an error naming the
    file; zstd and zip are refused with the command that decompresses them; limits count
    decompressed bytes. Before: read as binary text (a corpus of U+FFFD, JSON rows all invalid)."""
    from rw_tf.errors import CorruptFileError, UserError
    files = {
        "rows.jsonl": b"".join(json.dumps({"text": f"row {i}", "label": i % 2}).encode() + b"\n" for i in range(300)),
        "triples.tsv": b"a\tr\tb\nb\tr\tc\nc\ts\ta\n",
        "aliases.tsv": b"paris\tParis\nlondon\tLondon\n",
        "items.jsonl": b'{"item": "i1", "text": "one"}\n{"item": "i2", "text": "two"}\n',
        "corpus.txt": ("The first sentence of a document is here. The second sentence follows it now.\n\n\n"
                       "Another document starts with this line. And it has a second sentence too.\n").encode(),
        "texts.txt": b"hello\n\nworld wide\n",
    }

    def read_all(folder, suffix=""):
        path = lambda name: str(folder / (name + suffix))   # noqa: E731
        rejects = collections.Counter()
        out_embed = folder / f"embedded{suffix}.jsonl"
        assert main(["embed", "--model", length_model, "--input", path("texts.txt"), "--output", str(out_embed)]) == 0
        return {"rows": list(read_jsonl_objects(path("rows.jsonl"), rejects)), "rejects": rejects,
                "triples": load_triples(path("triples.tsv")).triples.tolist(),
                "aliases": read_alias_table(path("aliases.tsv"), {"Paris": 0, "London": 1})[0],
                "items": [list(x) for x in read_items(path("items.jsonl"))[:2]],
                "corpus": read_text_files([path("corpus.txt")]),
                "embedded": [json.loads(line)["embedding"] for line in open(out_embed)]}

    plain = tmp_path / "plain"
    plain.mkdir()
    for name, data in files.items():
        (plain / name).write_bytes(data)
    expected = read_all(plain)
    assert len(expected["rows"]) == 300 and len(expected["corpus"]) == 2 and len(expected["embedded"]) == 2
    for kind, compress in COMPRESSORS.items():
        folder = tmp_path / kind
        folder.mkdir()
        for name, data in files.items():   # the suffix says nothing: the content is sniffed
            (folder / (name + ".data")).write_bytes(compress(data))
        assert read_all(folder, ".data") == expected, kind

    rows = files["rows.jsonl"]
    whole = COMPRESSORS["gzip"](rows)
    damaged = {"cut": whole[:-30], "crc": whole[:-8] + bytes([whole[-8] ^ 1]) + whole[-7:],
               "length": whole[:-4] + (5).to_bytes(4, "little"),   # the trailer declares 5 bytes
               "cut_bzip2": COMPRESSORS["bzip2"](rows)[:-20], "cut_xz": COMPRESSORS["xz"](rows)[:-20]}
    for case, data in damaged.items():
        path = tmp_path / f"{case}.jsonl.gz"
        path.write_bytes(data)
        with pytest.raises(CorruptFileError, match=f"{path}: its .* data cannot be decompressed"):
            list(read_jsonl_objects(str(path), collections.Counter()))
        with pytest.raises(CorruptFileError, match=str(path)):
            read_text_files([str(path)])
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(damaged["cut"])
    assert main(["vocab", "--output", str(tmp_path / "v.txt"), "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: its gzip data cannot be decompressed" in err and "Traceback" not in err

    for magic, tool in ((b"\x28\xb5\x2f\xfd", "zstd -dc"), (b"PK\x03\x04", "unzip -p")):
        path = tmp_path / "rows.jsonl"
        path.write_bytes(magic + rows)
        with pytest.raises(UserError, match=f"decompress it first.*{tool} {path}"):
            list(read_jsonl_objects(str(path), collections.Counter()))

    # A small file that inflates past a limit is refused at the limit, in bounded memory.
    import zlib
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = tmp_path / "bomb.txt"
    with open(bomb, "wb") as f:
        for _ in range(256):
            f.write(packer.compress(b"\0" * (1 << 20)))
        f.write(packer.flush())
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="holds more than 8,388,608 bytes"):
            read_text_files([str(bomb)], max_bytes=8 << 20)
        assert tracemalloc.get_traced_memory()[1] < 32 << 20
    finally:
        tracemalloc.stop()

    # A vocabulary is read by TensorFlow's lookup table as it is: compressed, it is refused by name.
    vocab = tmp_path / "vocab.txt.gz"
    vocab.write_bytes(COMPRESSORS["gzip"](b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nword\n"))
    with pytest.raises(ValueError, match=f"vocabulary file {vocab} is gzip-compressed"):
        read_vocabulary(str(vocab))


def test_a_folder_given_for_a_file_is_named(tmp_path, capsys):
    """Every reader says which path is a folder (before: "[Errno 21] Is a directory: '...'" from some)."""
    with pytest.raises(IsADirectoryError, match=f"{tmp_path} is a folder, not a file"):
        list(read_jsonl_objects(str(tmp_path), collections.Counter()))
    models = tmp_path / "m"
    (models / "1").mkdir(parents=True)
    for argv in (["serve", "--model-base-path", str(models), "--enable-batching", "--batching-parameters-file",
                  str(tmp_path)], ["refine", "--blocklist", str(tmp_path), "embedded", str(tmp_path / "out")],
                 ["finetune", "--task", "retrieval", "--pairs", str(tmp_path), "--output-dir", str(tmp_path / "r")]):
        assert main(argv) == 2, argv
        assert f"{tmp_path} is a folder, not a file" in capsys.readouterr().err, argv


def test_a_byte_order_mark_at_the_start_is_not_text(tmp_path):
    # Windows editors start UTF-8 files with EF BB BF. It became part of the first line: an entity
    # named "\ufeffa" (a second entity for "a"), an alias that never matched, a rejected first row.
    class OneByteReads(io.RawIOBase):   # a pipe may hand the mark over in pieces
        def __init__(self, data):
            self.data = data

        def readable(self):
            return True

        def read1(self, size=-1):
            byte, self.data = self.data[:1], self.data[1:]
            return byte
        read = read1

    mark = b"\xef\xbb\xbf"
    assert list(bounded_lines(OneByteReads(mark + b"ab\ncd"))) == [(b"ab", False), (b"cd", False)]
    assert list(bounded_lines(OneByteReads(b"\xef\xbbx\n" + mark))) == [(b"\xef\xbbx", False), (mark, False)]
    assert list(bounded_lines(io.BytesIO(mark))) == []
    (tmp_path / "kg.tsv").write_bytes(mark + b"a\tr\tb\nb\tr\ta\n")
    assert load_triples(str(tmp_path / "kg.tsv")).entity_to_id == {"a": 0, "b": 1}
    (tmp_path / "aliases.tsv").write_bytes(mark + b"Ada Lovelace\ta\n")
    assert read_alias_table(str(tmp_path / "aliases.tsv"), {"a": 0})[0] == {"Ada Lovelace": 0}
    (tmp_path / "corpus.txt").write_bytes(mark + b"The first sentence is right here. The second one is here too.")
    assert read_text_files([str(tmp_path / "corpus.txt")])[0][0] == "The first sentence is right here."
    (tmp_path / "rows.jsonl").write_bytes(mark + b'{"text": "a"}\n')
    rejects = collections.Counter()
    assert list(read_jsonl_objects(str(tmp_path / "rows.jsonl"), rejects)) == [{"text": "a"}] and not rejects
