"""Knowledge enhancement: knowledge graphs, TransE embeddings, link-prediction evaluation."""
from rw_tf.knowledge.evaluation import filtered_ranks, rank_metrics
from rw_tf.knowledge.graph import KnowledgeGraph, TripleRejects, load_pykeen_dataset, load_triples
from rw_tf.knowledge.transe import TransE

__all__ = ["KnowledgeGraph", "TripleRejects", "TransE", "filtered_ranks", "load_pykeen_dataset",
           "load_triples", "rank_metrics"]
