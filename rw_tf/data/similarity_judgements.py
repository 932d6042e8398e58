"""Human similarity judgements that install offline: the Lee corpus (Lee, Pincombe and Welsh 2005).

gensim's wheel ships ``gensim/test/test_data/lee.cor`` (50 news documents, one per line) and
``similarities0-1.txt`` (the 50 x 50 mean human similarity ratings, 0-1, upper triangle), i.e.
1,225 scored document pairs. rw-tf installs gensim only for these files (``--no-deps``, its code
is never imported). all-MiniLM-L6-v2 scores Spearman 0.508 on them, TF-IDF 0.274.

Example:
    >>> docs, pairs, scores = lee_similarity_pairs()        # doctest: +SKIP
    >>> len(docs), len(pairs)                               # doctest: +SKIP
    (50, 1225)
"""
from __future__ import annotations

import importlib.util
import os
from typing import List, Optional, Tuple

import numpy as np


def lee_data_dir() -> str:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the Lee corpus ships in gensim's wheel: install gensim==4.3.3 with --no-deps "
                                "(requirements/data-packages.txt; make env does it)")
    return os.path.join(list(spec.submodule_search_locations)[0], "test", "test_data")


def lee_similarity_pairs(data_dir: Optional[str] = None) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """``(documents, pairs [1225, 2] of document indices i < j, human scores [1225])``."""
    data_dir = data_dir or lee_data_dir()
    # The file is Latin-1 (pound signs as byte 0xa3), not UTF-8.
    with open(os.path.join(data_dir, "lee.cor"), encoding="latin-1") as f:
        documents = [line.strip() for line in f if line.strip()]
    matrix = np.loadtxt(os.path.join(data_dir, "similarities0-1.txt"), dtype=np.float64)
    if matrix.shape != (len(documents), len(documents)):
        raise ValueError(f"similarity matrix {matrix.shape} does not match {len(documents)} documents")
    i, j = np.triu_indices(len(documents), k=1)
    return documents, np.stack([i, j], axis=1), matrix[i, j]
