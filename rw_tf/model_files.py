"""Reading the model files a user points rw-tf at, with errors that name the file.

A starting point (``--init-from``), a distillation teacher (``--kd-teacher``), an export to embed
with, a knowledge-graph model or a Hugging Face checkpoint is a folder of files that can be
truncated by a failed copy, overwritten, hand-edited or written by another program. The libraries
that read them fail in their own words: h5py raises ``OSError`` on a truncated weights file, Keras
calls a corrupt ``.keras`` archive "File not found", TensorFlow raises ``DataLossError`` and
safetensors ``SafetensorError``. The readers here turn every such failure into a
``CorruptFileError`` (a ``UserError``: one line and exit 2 on the command line) that names the
file and keeps the library's reason; a missing file stays a ``FileNotFoundError``.

Example:
    >>> encoder = load_keras_file("runs/pretrain/export/1/assets.extra/encoder.keras")  # doctest: +SKIP
    >>> read_json_object("runs/kg/entities.json")                                      # doctest: +SKIP
    rw_tf.errors.CorruptFileError: runs/kg/entities.json is not a UTF-8 JSON file: Expecting value: ...
"""
from __future__ import annotations

import io
import json
import struct
import zipfile
from typing import Any, Dict

import h5py
import keras
import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from safetensors import SafetensorError
from safetensors.numpy import load_file

from rw_tf.data.jsonl import loads_text
from rw_tf.data.lines import read_bounded
from rw_tf.errors import CorruptFileError
from rw_tf.path_checks import require_model_folder

MAX_FILE_BYTES = 1 << 31   # what one read into memory may hold (protobuf's own limit is 2 GiB)
MAX_JSON_BYTES = 1 << 28   # a config or a label map: the entities.json of a 10M-entity graph is ~200 MB
MAX_KERAS_CONFIG_BYTES = 1 << 26   # a .keras config.json: ~40 KB for a 24-layer encoder
# A .keras member or weight may hold at most MAX_EXPANSION times the bytes it stores once it is
# more than EXPANSION_FLOOR bytes. Keras stores members and weights uncompressed (1x); DEFLATE of
# real weights gains little; a member of zeros, or a weight whose chunks were never written (HDF5
# fills them on read), is a file of kilobytes that Keras would expand to gigabytes in memory (its
# own guard starts at 4 GiB).
MAX_EXPANSION = 100
EXPANSION_FLOOR = 1 << 24

# What the readers raise for bad content (not for bugs of ours): h5py and file I/O (OSError),
# deserialization (ValueError, KeyError, TypeError on a config that does not fit a class),
# zip archives, protobuf parsing, TensorFlow's kernels, and its checkpoint reader, which raises
# IndexError ("Read less bytes than requested") on a truncated variables file.
CONTENT_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile, DecodeError,
                   tf.errors.OpError)


def content_error(err: BaseException) -> str:
    """The type and first line of a reader's error, for a message that names the file."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


def _exists(path: str, what: str) -> None:
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")


def read_bytes(path: str, what: str = "file", limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path`` (local, a pipe, or any ``tf.io.gfile`` filesystem); a file of more
    than ``limit`` bytes (or an endless device) is a ``CorruptFileError`` before it fills memory."""
    _exists(path, what)
    if tf.io.gfile.isdir(path):
        raise CorruptFileError(f"{what} {path} is a folder, not a file")
    try:
        return read_bounded(path, limit, what)
    except ValueError as err:
        raise CorruptFileError(str(err)) from None


def read_json_object(path: str, what: str = "settings") -> Dict[str, Any]:
    """The JSON object of ``what`` stored at ``path`` (at most ``MAX_JSON_BYTES``); bytes that are
    not UTF-8 JSON holding an object, nested too deeply or escaping a lone surrogate (a path such
    as ``"/data/\\ud800"`` failed later, unnamed, in every file system call) are a ``CorruptFileError``."""
    try:
        values = loads_text(read_bytes(path, what, MAX_JSON_BYTES))
    except ValueError as err:   # UnicodeDecodeError and LoneSurrogate too
        raise CorruptFileError(f"{path} is not a UTF-8 JSON file: {err}") from None
    if not isinstance(values, dict):
        raise CorruptFileError(f"{path} must hold a JSON object of {what}, not a {type(values).__name__}")
    return values


def _is_zip(path: str) -> bool:
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return zipfile.is_zipfile(f)
    except tf.errors.OpError:  # GFile refuses is_zipfile's seek before the start of a file of a few bytes
        return False


def _expands_too_far(declared: int, stored: int) -> bool:
    return declared > EXPANSION_FLOOR and declared > MAX_EXPANSION * stored


class _StoredMember(io.RawIOBase):
    """An uncompressed zip member read in place. zipfile's reader (Python < 3.12) re-reads a member
    from its start on every backward seek, which made walking a 440 MB weights file take 100 s."""

    def __init__(self, archive_file, member: zipfile.ZipInfo) -> None:
        super().__init__()
        archive_file.seek(member.header_offset)
        header = archive_file.read(30)   # the local header's name and extra lengths can differ from the directory's
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"no local header for {member.filename} at byte {member.header_offset}")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        self._file, self._start = archive_file, member.header_offset + 30 + name_length + extra_length
        self._size, self._position = member.file_size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        self._file.seek(self._start + self._position)
        data = self._file.read(max(0, min(len(buffer), self._size - self._position)))
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)


def _open_member(archive: zipfile.ZipFile, archive_file, name: str):
    member = archive.getinfo(name)
    if member.compress_type == zipfile.ZIP_STORED:
        return _StoredMember(archive_file, member)
    return io.BytesIO(archive.read(name))   # size already bounded; Keras reads it whole too


def _check_declared_sizes(path: str) -> None:
    """Refuses a ``.keras`` archive whose members or weights declare far more bytes than the file
    stores, before Keras reads them into memory."""
    with tf.io.gfile.GFile(path, "rb") as f, zipfile.ZipFile(f) as archive:
        for member in archive.infolist():
            limit = MAX_KERAS_CONFIG_BYTES if member.filename.endswith(".json") else MAX_FILE_BYTES
            if member.file_size > limit or _expands_too_far(member.file_size, member.compress_size):
                raise CorruptFileError(
                    f"{path}: its member {member.filename} declares {member.file_size:,} bytes and stores "
                    f"{member.compress_size:,} (a decompression bomb or a corrupt size field; rw-tf reads at most "
                    f"{limit:,} bytes and {MAX_EXPANSION}x what is stored)")
        if "model.weights.h5" not in archive.namelist():
            return
        def check_weight(name: str, item) -> None:
            if not isinstance(item, h5py.Dataset):
                return
            declared, stored = item.size * item.dtype.itemsize, item.id.get_storage_size()
            if _expands_too_far(declared, stored):
                raise CorruptFileError(
                    f"{path}: its weight {name} of shape {item.shape} declares {declared:,} bytes and stores "
                    f"{stored:,} (a decompression bomb or unwritten chunks; rw-tf reads at most {MAX_EXPANSION}x "
                    "what is stored)")

        with _open_member(archive, f, "model.weights.h5") as member, h5py.File(member, "r") as weights:
            weights.visititems(check_weight)


def load_keras_file(path: str, expected: type = None) -> keras.Model:
    """The model saved with ``model.save(path)`` (a ``.keras`` archive), uncompiled; with
    ``expected``, a model of another class is an error too. An archive whose members or weights
    declare far more bytes than it stores (a decompression bomb) is refused before it is read."""
    _exists(path, "Keras model file")
    if tf.io.gfile.isdir(path) or not _is_zip(path):
        raise CorruptFileError(f"{path} is not a .keras model file (not a zip archive: truncated, overwritten "
                               f"or another format)")
    try:
        _check_declared_sizes(path)
        model = keras.saving.load_model(path, compile=False)
    except CorruptFileError:
        raise
    except CONTENT_ERRORS as err:
        raise CorruptFileError(f"{path} cannot be loaded as a Keras model ({content_error(err)})") from err
    if expected is not None and not isinstance(model, expected):
        raise CorruptFileError(f"{path} holds a {type(model).__name__}, not a {expected.__name__}")
    return model


MAX_VERSION = (1 << 63) - 1   # TF Serving's versions are int64


def version_folders(base_path: str) -> Dict[int, str]:
    """The complete numbered version folders under ``base_path`` (TF Serving's layout; the Pusher
    writes ``saved_model.pb`` last), by version. A name is a version as TF Serving reads it: ASCII
    digits within int64, leading zeros allowed (``007`` is version 7, loaded from ``007``); other
    names (``²``, ``١``, ``1e3``) are not versions. Of two names of one version, the shorter wins."""
    if not tf.io.gfile.isdir(base_path):
        return {}
    found: Dict[int, str] = {}
    for name in sorted((entry.rstrip("/") for entry in tf.io.gfile.listdir(base_path)), key=lambda n: (len(n), n)):
        if (name.isascii() and name.isdigit() and int(name) <= MAX_VERSION
                and tf.io.gfile.exists(f"{base_path.rstrip('/')}/{name}/saved_model.pb")):
            found.setdefault(int(name), name)
    return found


def load_saved_model(path: str):
    """``tf.saved_model.load(path)``; a folder without a complete SavedModel is an error naming it."""
    _exists(path, "SavedModel folder")
    require_model_folder(path, "the SavedModel folder")
    if not tf.io.gfile.exists(f"{path.rstrip('/')}/saved_model.pb"):
        raise FileNotFoundError(f"no SavedModel in {path} (saved_model.pb is missing)")
    try:
        return tf.saved_model.load(path)
    except CONTENT_ERRORS as err:
        raise CorruptFileError(f"the SavedModel in {path} cannot be loaded ({content_error(err)})") from err


def load_safetensors(path: str) -> Dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as NumPy arrays (the header's declared shapes and
    offsets are checked against the file by safetensors itself)."""
    _exists(path, "safetensors file")
    try:
        return load_file(path)
    except (SafetensorError, OSError, json.JSONDecodeError) as err:
        raise CorruptFileError(f"{path} is not a readable safetensors file ({content_error(err)})") from err
