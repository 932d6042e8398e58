"""Main-text extraction from HTML with trafilatura, as RefinedWeb does (favouring precision).

``extract_text(html, url)`` returns the page's main text with navigation, headers, footers and
comments left out by trafilatura (``favor_precision=True``, no comments, no tables), then applies
RefinedWeb's two corrections: URLs are removed, and runs of blank lines are cut to at most two
consecutive newlines. None when trafilatura finds no main text or the page is not parseable HTML.

Pages given as ``text`` (JSON Lines with a text field) skip extraction but get the same two
corrections, so every document reaching the filters has the same shape.

``BoundedExtractor`` runs ``extract_text`` in a child process with a time limit per page, as
datatrove's extractors do: libxml2's HTML parser and jusText are quadratic in some markup (a 1 MB
tag of 100,000 attributes took 60 s, so an 8 MiB page about an hour, stalling its worker), and
neither can be interrupted from Python. A page over the limit is a counted ``extraction_timeout``;
the child is killed and the next page gets a fresh one. Its memory is bounded the same way: an
8 MiB page of ``<br>`` tags grew trafilatura to 2.9 GB in 10 s (3.1 GB in all), in every worker
that read one, so a child whose resident memory passes ``memory_mb`` is killed (the page is a
counted ``extraction_memory``), and one left above half of it by a large page is replaced.

Example:
    >>> extract_text("<html><body><nav>Home | About</nav><article><p>" + "Real prose here. " * 20
    ...              + "</p></article></body></html>")[:16]
    'Real prose here.'
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import select
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Callable, Optional, Tuple

import trafilatura

_URL = re.compile(r"(?:https?|ftp)://\S+|www\.[\w-]+\.\S+")
_BLANK_RUNS = re.compile(r"\n\s*\n(?:\s*\n)+")
_SPACES = re.compile(r"[ \t]+")

# trafilatura logs every page it cannot parse at WARNING; the stage counts them instead.
logging.getLogger("trafilatura").setLevel(logging.ERROR)


def clean_text(text: str) -> str:
    """URLs removed, spaces collapsed within lines, at most two consecutive newlines."""
    text = _URL.sub("", text)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return _BLANK_RUNS.sub("\n\n", text).strip()


def extract_text(html: str, url: Optional[str] = None) -> Optional[str]:
    """Main text of ``html`` (see the module docstring), or None."""
    try:
        text = trafilatura.extract(html, url=url, favor_precision=True, include_comments=False,
                                   include_tables=False, deduplicate=False, with_metadata=False)
    except (ValueError, TypeError, RecursionError):   # lxml on malformed or absurdly nested markup
        return None
    if not text:
        return None
    text = clean_text(text)
    return text or None


# This file is loaded by path in the child (only the standard library and trafilatura: the rw_tf
# package would import TensorFlow). Frames are an 8-byte length and a pickle; stray prints of the
# libraries go to stderr, which is discarded. The parent watches the child's resident memory between
# reads; the address-space limit of twice that (argv[2]) only stops an allocation too large and too
# quick for the watch.
_CHILD = """
import importlib.util, os, pickle, resource, struct, sys
spec = importlib.util.spec_from_file_location("rw_tf_extraction", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
source, sink = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
sink.write(b"R"); sink.flush()
while True:
    header = source.read(8)
    if len(header) < 8:
        break
    html, url = pickle.loads(source.read(struct.unpack("<Q", header)[0]))
    data = pickle.dumps(module.extract_text(html, url))
    sink.write(struct.pack("<Q", len(data)) + data); sink.flush()
"""
CHILD_START_SECONDS = 120   # importing trafilatura on a loaded machine; not part of any page's limit
MEMORY_POLL_SECONDS = 0.02  # trafilatura grew by about 300 MB/s on the 8 MiB page: 6 MB between polls


class BoundedExtractor:
    """``extract(html, url) -> (text or None, outcome)``: ``extract_text`` in a child process that
    is killed after ``timeout_seconds`` on one page or when its resident memory passes ``memory_mb``
    MiB. Outcomes: ``"kept"``, ``"no_main_text"``, ``"extraction_timeout"``, ``"extraction_memory"``
    and ``"extraction_failed"`` (the child died: a crash, the kernel's OOM killer). The child starts
    on first use and ends with its parent (end of input)."""

    def __init__(self, timeout_seconds: float = 10.0, memory_mb: int = 1024) -> None:
        self.timeout_seconds, self.memory_mb = timeout_seconds, memory_mb
        self._child: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()   # one page at a time through the child's pipes

    def __getstate__(self):   # Beam pickles stages; each worker starts its own child
        return {"timeout_seconds": self.timeout_seconds, "memory_mb": self.memory_mb}

    def __setstate__(self, state) -> None:
        self.__init__(**state)

    @property
    def pid(self) -> Optional[int]:
        return self._child.pid if self._child else None

    def extract(self, html: str, url: Optional[str] = None) -> Tuple[Optional[str], str]:
        with self._lock:
            return self._extract(html, url)

    def _extract(self, html: str, url: Optional[str]) -> Tuple[Optional[str], str]:
        child = self._child or self._start()
        frame = pickle.dumps((html, url), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            child.stdin.write(struct.pack("<Q", len(frame)) + frame)
            child.stdin.flush()
            deadline = time.monotonic() + self.timeout_seconds
            size = struct.unpack("<Q", _read(child.stdout, 8, deadline, self._check_memory))[0]
            text = pickle.loads(_read(child.stdout, size, deadline, self._check_memory))
        except TimeoutError:
            self.close()
            return None, "extraction_timeout"
        except MemoryError:
            self.close()
            return None, "extraction_memory"
        except (OSError, EOFError):    # BrokenPipeError included: the child died
            self.close()
            return None, "extraction_failed"
        if 2 * resident_bytes(child.pid) > self.memory_mb << 20:   # freed memory that stays with the process
            self.close()
        return text, "kept" if text else "no_main_text"

    def _check_memory(self) -> None:
        if resident_bytes(self._child.pid) > self.memory_mb << 20:
            raise MemoryError

    def _start(self) -> subprocess.Popen:
        self._child = subprocess.Popen([sys.executable, "-c", _CHILD, os.path.abspath(__file__),
                                        str(2 * self.memory_mb << 20)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            _read(self._child.stdout, 1, time.monotonic() + CHILD_START_SECONDS)
        except (TimeoutError, EOFError) as err:
            self.close()
            raise RuntimeError(f"the text extraction process did not start ({type(err).__name__})") from None
        return self._child

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            for pipe in (self._child.stdin, self._child.stdout):
                pipe.close()
            self._child = None


def _read(stream: IO[bytes], size: int, deadline: float, between_polls: Callable[[], None] = lambda: None) -> bytes:
    """Exactly ``size`` bytes of a pipe, or ``TimeoutError`` at ``deadline``, ``EOFError`` at its end;
    ``between_polls`` runs every ``MEMORY_POLL_SECONDS`` of waiting (it may raise)."""
    chunks, left, fd = [], size, stream.fileno()
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0:
            raise TimeoutError
        if not select.select([fd], [], [], min(wait, MEMORY_POLL_SECONDS))[0]:
            between_polls()
            continue
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def resident_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` (Linux's /proc), 0 once it has ended."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0
