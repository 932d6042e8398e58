"""TransE (Bordes et al., 2013) as a Keras model: d(h, r, t) = ||e_h + w_r - e_t||_p.

Training minimizes the margin ranking loss max(0, margin + d(pos) - d(neg)) against
``num_negatives`` corruptions per positive (head or tail replaced by a uniformly drawn entity,
50/50). Entity embeddings are kept at unit L2 norm (a ``UnitNorm`` constraint applied after every
optimizer update, which is when PyKEEN's TransE applies its entity constrainer). Uses
``keras.ops``/``keras.random`` only, so it runs under any Keras backend.

Example:
    >>> model = TransE(num_entities=14, num_relations=55, embedding_dim=32)
    >>> model.compile(optimizer="adam")
    >>> # model.fit(train_triples, epochs=100, batch_size=256)   # inputs: int [n, 3]
"""
from __future__ import annotations

from typing import Any, Optional

import keras
from keras import ops

from rw_tf.config import checks_number_arguments
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.id_checks import checked_ids
from rw_tf.losses import replica_sum
from rw_tf.models.task_model import TaskModelMixin


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments()
class TransE(TaskModelMixin, keras.Model):
    """Knowledge-graph embeddings scored by d(h, r, t) = ||e_h + w_r - e_t||_p (lower = more
    plausible), trained with the margin ranking loss against corrupted triples (module docstring).

    Args:
        num_entities: number of entity ids (at least 2).
        num_relations: number of relation ids (at least 1).
        embedding_dim: size of entity and relation vectors.
        norm: p, 1 or 2.
        margin: the ranking loss's margin.
        num_negatives: corrupted triples drawn per positive in training.
        seed: seed of the initializers and of the corruption draws.
    Shapes:
        ``model(triples [batch, 3] int (head, relation, tail))`` -> float32 distances [batch].

    Example:
        >>> model = TransE(num_entities=3, num_relations=1, embedding_dim=2, norm=2)
        >>> model.build()
        >>> _ = model.entity_embedding.embeddings.assign([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
        >>> _ = model.relation_embedding.embeddings.assign([[-1.0, 1.0]])
        >>> [round(float(d), 4) for d in model(keras.ops.array([[0, 0, 1], [0, 0, 2]]))]   # e_0 + r = e_1
        [0.0, 1.4142]
        >>> model.compile(optimizer="adam")        # then model.fit(train_triples [n, 3], ...)
    """

    # TaskModelMixin: its config from these arguments, and fit across several workers.
    config_fields = ("num_entities", "num_relations", "embedding_dim", "norm", "margin", "num_negatives", "seed")

    def __init__(self, num_entities: int, num_relations: int, embedding_dim: int = 50, norm: int = 1,
                 margin: float = 1.0, num_negatives: int = 1, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if norm not in (1, 2):
            raise ValueError("norm must be 1 or 2")
        if num_entities < 2 or num_relations < 1:
            raise ValueError("need at least 2 entities and 1 relation")
        self.set_config_fields(locals())
        bound = 6.0 / embedding_dim ** 0.5  # Bordes et al.'s uniform initialization
        with sublayer_policy(self):  # the embeddings take this model's dtype policy
            self.entity_embedding = keras.layers.Embedding(
                num_entities, embedding_dim, name="entity_embedding",
                embeddings_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed),
                embeddings_constraint=keras.constraints.UnitNorm(axis=1))
            self.relation_embedding = keras.layers.Embedding(
                num_relations, embedding_dim, name="relation_embedding",
                embeddings_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed))
        self._seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: Any = None) -> None:
        self.entity_embedding.build((None,))
        self.relation_embedding.build((None,))
        # Relations are normalized once at initialization (Bordes et al.); entities by the constraint.
        for emb in (self.relation_embedding.embeddings, self.entity_embedding.embeddings):
            emb.assign(emb / ops.maximum(ops.norm(emb, axis=-1, keepdims=True), 1e-12))
        self.built = True

    def distance(self, heads: Any, relations: Any, tails: Any) -> Any:
        h = self.entity_embedding(heads)
        r = self.relation_embedding(relations)
        t = self.entity_embedding(tails)
        # In float32 under mixed precision: the margin loss compares distances that differ by little.
        return ops.norm(ops.cast(h, "float32") + ops.cast(r, "float32") - ops.cast(t, "float32"),
                        ord=self.norm, axis=-1)

    def call(self, triples: Any) -> Any:
        """Distances of ``[batch, 3]`` (head, relation, tail) triples; lower = more plausible."""
        triples = ops.convert_to_tensor(triples)
        if len(triples.shape) != 2 or triples.shape[1] not in (3, None):
            raise ValueError("TransE scores [batch, 3] (head, relation, tail) id triples, "
                             f"got shape {tuple(triples.shape)}")
        entities = ops.stack([triples[:, 0], triples[:, 2]], axis=1)
        heads_and_tails = ops.cast(checked_ids(entities, self.num_entities, "head and tail ids",
                                               limit="num_entities"), "int32")
        relations = ops.cast(checked_ids(triples[:, 1], self.num_relations, "relation ids",
                                         limit="num_relations"), "int32")
        return self.distance(heads_and_tails[:, 0], relations, heads_and_tails[:, 1])

    def corrupt(self, triples: Any) -> Any:
        """``num_negatives`` corruptions per triple: head or tail replaced by a random entity."""
        triples = ops.repeat(ops.cast(triples, "int32"), self.num_negatives, axis=0)
        n = ops.shape(triples)[0]
        replacement = keras.random.randint((n,), 0, self.num_entities, dtype="int32", seed=self._seed_generator)
        corrupt_head = keras.random.uniform((n,), seed=self._seed_generator) < 0.5
        heads = ops.where(corrupt_head, replacement, triples[:, 0])
        tails = ops.where(corrupt_head, triples[:, 2], replacement)
        return ops.stack([heads, triples[:, 1], tails], axis=1)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                     training: bool = True) -> Any:
        positive = ops.repeat(y_pred, self.num_negatives, axis=0)
        negative = self(self.corrupt(x))
        # The mean over the global batch: this replica's share (see rw_tf.losses.GlobalMeanLoss).
        count = replica_sum(ops.cast(ops.shape(negative)[0], "float32"))
        return ops.sum(ops.relu(self.margin + positive - negative)) / count
