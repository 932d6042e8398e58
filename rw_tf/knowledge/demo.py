"""An offline domain demo: the Nations knowledge graph (shipped by pykeen) and a corpus about it.

How the corpus is built: every triple (head, relation, tail) becomes the sentence
"<head> <relation words> <tail>." (relation labels split at non-letters, e.g. "exports3" ->
"exports"); sentences are grouped by head entity, shuffled with the seed and cut into documents
of ``sentences_per_document``. Training text comes from the train triples, evaluation text from
the test triples only, so the language model never read the evaluated facts; the knowledge model
(TransE) is trained on the train triples too. Aliases: each entity label links to its entity.

The domain's downstream task (``triple_classification_rows``): is a sentence "<head> <relation
words> <tail>." a fact? Positives are triples, negatives the same triple with its head or tail
replaced so that it is in no split (filtered corruption, as in knowledge-graph evaluation). Training
rows come from the train triples, evaluation rows from the test triples; a sentence is never on
both sides (two relations can share words once digits are stripped).

Example:
    >>> demo = nations_demo()
    >>> len(demo.entity_to_id), demo.train_documents[0][0].endswith(".")
    (14, True)
    >>> train, evaluation = triple_classification_rows(demo)
    >>> sorted({row["label"] for row in evaluation}), sum(row["label"] for row in evaluation) <= len(demo.test)
    ([0, 1], True)
"""
from __future__ import annotations

import dataclasses
import random
import re
from typing import Dict, List, Optional, Set, Tuple

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


def triple_sentence(kg: KnowledgeGraph, triple) -> str:
    entities = {i: e for e, i in kg.entity_to_id.items()}
    relations = {i: r for r, i in kg.relation_to_id.items()}
    h, r, t = (int(x) for x in triple)
    return f"{entities[h]} {relation_words(relations[r])} {entities[t]}."


def _corrupted(kg: KnowledgeGraph, triple, fact_sentences: Set[str], num_entities: int, rng: random.Random
               ) -> Optional[str]:
    """The sentence of ``triple`` with its head or tail replaced, stating no known fact (compared as
    sentences: relations whose labels differ only in digits read the same)."""
    h, r, t = (int(x) for x in triple)
    candidates = [(e, r, t) for e in range(num_entities) if e != h] + [(h, r, e) for e in range(num_entities) if e != t]
    sentences = [triple_sentence(kg, c) for c in candidates]
    sentences = [c for c in sentences if c not in fact_sentences]
    return rng.choice(sentences) if sentences else None


def triple_classification_rows(demo: DomainDemo, max_train: Optional[int] = None, seed: int = 0
                               ) -> Tuple[List[Dict], List[Dict]]:
    """(train rows, evaluation rows) of ``{"text", "label"}`` (1: a fact, 0: a filtered corruption),
    one corruption per triple; train from the train triples (at most ``max_train`` of them), eval
    from the test triples. Sentences of the training side never occur in evaluation."""
    rng = random.Random(seed)
    kg, num_entities = demo.train, len(demo.entity_to_id)
    facts = {triple_sentence(kg, row) for split in (demo.train, demo.valid, demo.test) for row in split.triples}

    def rows_of(triples, exclude: Set[str]) -> List[Dict]:
        rows, seen = [], set(exclude)
        for triple in triples:
            negative = _corrupted(kg, triple, facts, num_entities, rng)
            pair = [(triple_sentence(kg, triple), 1)] + ([(negative, 0)] if negative else [])
            for text, label in pair:
                if text not in seen:
                    seen.add(text)
                    rows.append({"text": text, "label": label})
        return rows

    evaluation = rows_of(demo.test.triples, set())
    train_triples = list(demo.train.triples)
    rng.shuffle(train_triples)
    train = rows_of(train_triples[:max_train] if max_train else train_triples, {r["text"] for r in evaluation})
    rng.shuffle(train)
    return train, evaluation
