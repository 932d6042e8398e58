"""Knowledge graphs as (head, relation, tail) id triples with their entity/relation vocabularies.

TSV rules: one triple per line, three tab-separated non-empty fields; blank lines and lines
starting with ``#`` are skipped. Malformed rows (wrong field count, empty field, invalid UTF-8) and,
when the vocabularies are fixed, rows naming unknown entities or relations are *rejected*:
counted per reason in ``TripleRejects`` (with the first examples), never dropped silently.

Example:
    >>> train, valid, test = load_pykeen_dataset("nations")
    >>> train.num_entities, train.num_relations, len(train)
    (14, 55, 1592)
"""
from __future__ import annotations

import collections
import dataclasses
import importlib.util
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from rw_tf.data.lines import bounded_lines, open_input
from rw_tf.errors import CorruptFileError
from rw_tf.model_files import read_json_object

PYKEEN_DATASETS = ("nations", "kinships", "umls")


@dataclasses.dataclass
class TripleRejects:
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: List[Tuple[str, int, str]] = dataclasses.field(default_factory=list)

    def add(self, reason: str, line_number: int, line: str) -> None:
        self.counts[reason] += 1
        if len(self.examples) < 20:
            self.examples.append((reason, line_number, line[:200]))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclasses.dataclass
class KnowledgeGraph:
    """Integer triples ``[n, 3]`` (head, relation, tail) plus the label <-> id maps."""

    triples: np.ndarray
    entity_to_id: Dict[str, int]
    relation_to_id: Dict[str, int]
    rejects: TripleRejects = dataclasses.field(default_factory=TripleRejects)

    def __len__(self) -> int:
        return len(self.triples)

    @property
    def num_entities(self) -> int:
        return len(self.entity_to_id)

    @property
    def num_relations(self) -> int:
        return len(self.relation_to_id)

    def entity_id(self, label: str) -> int:
        if label not in self.entity_to_id:
            raise KeyError(f"unknown entity {label!r}")
        return self.entity_to_id[label]


def _read_rows(path: str, rejects: TripleRejects) -> Iterable[Tuple[int, Tuple[str, str, str], str]]:
    with open_input(path, decompress=True) as f:
        for number, (raw, too_long) in enumerate(bounded_lines(f, source=path), 1):
            if too_long:
                rejects.add("line_too_long", number, raw[:200].decode("utf-8", "replace"))
                continue
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                rejects.add("invalid_utf8", number, raw.decode("utf-8", "replace"))
                continue
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                rejects.add("wrong_field_count", number, line)
                continue
            fields = [x.strip() for x in fields]
            if not all(fields):
                rejects.add("empty_field", number, line)
                continue
            yield number, (fields[0], fields[1], fields[2]), line


def load_triples(path: str, entity_to_id: Optional[Dict[str, int]] = None,
                 relation_to_id: Optional[Dict[str, int]] = None) -> KnowledgeGraph:
    """Reads a triple TSV. With given vocabularies, unknown labels are rejected; without, they grow."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"triple file not found: {path}")
    fixed = entity_to_id is not None and relation_to_id is not None
    entities = dict(entity_to_id or {})
    relations = dict(relation_to_id or {})
    rejects = TripleRejects()
    rows = []
    for number, (h, r, t), line in _read_rows(path, rejects):
        if fixed:
            unknown = [x for x in (h, t) if x not in entities] + ([r] if r not in relations else [])
            if unknown:
                rejects.add("unknown_entity_or_relation", number, line)
                continue
        else:
            for label in (h, t):
                entities.setdefault(label, len(entities))
            relations.setdefault(r, len(relations))
        rows.append((entities[h], relations[r], entities[t]))
    triples = np.array(rows, dtype=np.int32).reshape(-1, 3)
    return KnowledgeGraph(triples, entities, relations, rejects)


def read_entity_vocabulary(model_dir: str) -> Dict[str, int]:
    """entity label -> id of a ``rw-tf kg train`` output folder (its ``entities.json``)."""
    path = os.path.join(model_dir, "entities.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no entities.json in {model_dir}: is it a `rw-tf kg train` output?")
    return label_ids(path, "entity")


def label_ids(path: str, kind: str) -> Dict[str, int]:
    """label -> id of a ``rw-tf kg train`` vocabulary file (``entities.json``, ``relations.json``):
    a JSON object whose ids are 0 .. n-1, each once (they index the embedding tables)."""
    labels = read_json_object(path, f"{kind} label -> id")
    bad = [(label, i) for label, i in labels.items() if not isinstance(i, int) or isinstance(i, bool)]
    if bad:
        raise CorruptFileError(f"{path}: {kind} ids must be integers, got {bad[0][0]!r}: {bad[0][1]!r}")
    if sorted(labels.values()) != list(range(len(labels))):
        raise CorruptFileError(f"{path}: the {len(labels)} {kind} ids must be 0 .. {len(labels) - 1}, each once")
    return labels


def _sorted_vocab(paths: Sequence[str]) -> Tuple[Dict[str, int], Dict[str, int]]:
    """Sorted label vocabularies over several files (PyKEEN's TriplesFactory does the same)."""
    entities, relations = set(), set()
    for path in paths:
        for _, (h, r, t), _ in _read_rows(path, TripleRejects()):
            entities.update((h, t))
            relations.add(r)
    return ({e: i for i, e in enumerate(sorted(entities))}, {r: i for i, r in enumerate(sorted(relations))})


def pykeen_dataset_dir(name: str) -> str:
    """The folder of a dataset that the ``pykeen`` package ships (located without importing pykeen)."""
    if name not in PYKEEN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; pykeen ships {PYKEEN_DATASETS}")
    spec = importlib.util.find_spec("pykeen")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the pykeen package is not installed (requirements/data-packages.txt)")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", name)


def load_pykeen_dataset(name: str) -> Tuple[KnowledgeGraph, KnowledgeGraph, KnowledgeGraph]:
    """(train, valid, test) with vocabularies built from all three splits, sorted by label."""
    folder = pykeen_dataset_dir(name)
    paths = [os.path.join(folder, f"{split}.txt") for split in ("train", "valid", "test")]
    entities, relations = _sorted_vocab(paths)
    return tuple(load_triples(p, entities, relations) for p in paths)  # type: ignore[return-value]
