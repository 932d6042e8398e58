"""An offline domain demo: the Nations knowledge graph (shipped by pykeen) and a corpus about it.

How the corpus is built: every triple (head, relation, tail) becomes the sentence
"<head> <relation words> <tail>." (relation labels split at non-letters, e.g. "exports3" ->
"exports"); sentences are grouped by head entity, shuffled with the seed and cut into documents
of ``sentences_per_document``. Training text comes from the train triples, evaluation text from
the test triples only, so the language model never read the evaluated facts; the knowledge model
(TransE) is trained on the train triples too. Aliases: each entity label links to its entity.

Example:
    >>> demo = nations_demo()
    >>> len(demo.entity_to_id), demo.train_documents[0][0].endswith(".")
    (14, True)
"""
from __future__ import annotations

import dataclasses
import random
import re
from typing import Dict, List

import numpy as np

from rw_tf.knowledge.graph import KnowledgeGraph, load_pykeen_dataset


@dataclasses.dataclass
class DomainDemo:
    train: KnowledgeGraph
    valid: KnowledgeGraph
    test: KnowledgeGraph
    entity_to_id: Dict[str, int]
    alias_to_entity: Dict[str, int]
    train_documents: List[List[str]]
    eval_documents: List[List[str]]


def relation_words(label: str) -> str:
    words = re.sub(r"[^A-Za-z]+", " ", label).strip()
    return words or label


def triples_to_documents(kg: KnowledgeGraph, triples: np.ndarray, sentences_per_document: int,
                         seed: int) -> List[List[str]]:
    entities = {i: e for e, i in kg.entity_to_id.items()}
    relations = {i: r for r, i in kg.relation_to_id.items()}
    by_head: Dict[int, List[str]] = {}
    for h, r, t in triples:
        by_head.setdefault(int(h), []).append(f"{entities[h]} {relation_words(relations[r])} {entities[t]}.")
    rng = random.Random(seed)
    documents = []
    for head in sorted(by_head):
        sentences = by_head[head]
        rng.shuffle(sentences)
        documents.extend(sentences[i:i + sentences_per_document]
                         for i in range(0, len(sentences), sentences_per_document)
                         if len(sentences[i:i + sentences_per_document]) >= 2)
    return documents


def nations_demo(sentences_per_document: int = 8, seed: int = 0) -> DomainDemo:
    train, valid, test = load_pykeen_dataset("nations")
    return DomainDemo(train, valid, test, train.entity_to_id, dict(train.entity_to_id),
                      triples_to_documents(train, train.triples, sentences_per_document, seed),
                      triples_to_documents(train, test.triples, sentences_per_document, seed + 1))
