"""A two-tower recommender: an item tower over item texts (and ids), a user tower over histories.

Example:
    >>> model = TwoTowerRecommender(num_items=50, text_dim=8, embedding_dim=16, max_history=5)
    >>> model.build({"history": (None, 5), "item": (None,)})
    >>> model.set_item_text_embeddings(np.random.default_rng(0).normal(size=(50, 8)))
    >>> model.compile(optimizer="adam")     # InfoNCELoss, the user's history masked from the negatives
    >>> # model.fit(tf.data of ({"history": ids [batch, 5] (-1 pads), "item": ids [batch]},
    >>> #                        ids [batch, 3 + 5] = (-1, item, item, history)))
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import numpy as np
from keras import ops

from rw_tf.config import check_choice, checks_number_arguments
from rw_tf.layers.dtype import sublayer_policy
from rw_tf.layers.id_checks import checked_ids
from rw_tf.losses import InfoNCELoss
from rw_tf.models.task_model import TaskModelMixin
from rw_tf.networks.pooling import unit_vectors

USER_POOLINGS = ("attention", "mean")


@keras.saving.register_keras_serializable(package="rw_tf")
@checks_number_arguments(may_be_zero=("profile_dim",))
class TwoTowerRecommender(TaskModelMixin, keras.Model):
    """Scores items for users by the cosine of a user vector and an item vector.

    Item tower: a frozen table of item-text embeddings [num_items, text_dim] (e.g. a sentence
    encoder's vectors of each item's description, ``set_item_text_embeddings``), a trainable
    linear projection, plus a trainable per-item id embedding (``use_item_ids``), L2-normalised.
    User tower: the item vectors of the history (item ids [batch, max_history], -1 padding, most
    recent last), plus a learned recency embedding (0 = the latest item), pooled by additive
    attention (or a mean), projected and L2-normalised.

    In-batch negatives are drawn in proportion to item frequency, which pushes popular items down;
    with ``sampling_correction`` training subtracts log q_j (the item's share of the training
    targets, ``set_item_frequencies``) from its logits (Yi et al. 2019, "Sampling-bias-corrected
    neural modeling for large corpus item recommendations"): ``call`` appends one dimension,
    1 to the user and -tau log q_j to the item, so that InfoNCE's logits become
    cos(u, v_j) / tau - log q_j. A learned per-item bias b_j (``item_bias``) is added to the
    same extra dimension; scoring and serving use cos(u, v_j) + tau b_j. ``call({"history", "item"})`` returns
    [batch, 2, dim] = (user, item) for ``InfoNCELoss``; its targets are ids
    [batch, 3 + max_history] = (-1, item, item, history...), so copies of the target item and the
    items the user already has are not used as negatives. ``recommend`` ranks all items.

    Profile text: with ``profile_dim > 0`` the user tower also reads a profile vector [batch,
    profile_dim] (a sentence embedding of the user's profile text; zeros: no profile), projected
    and added to the pooled history; inputs and ``scores``/``recommend`` then take ``profile``.

    Args:
        num_items: size of the item catalogue.
        text_dim: size of the item-text embeddings.
        embedding_dim: size of user and item vectors.
        max_history: longest history the user tower reads.
        use_item_ids: add a learned per-item embedding to the projected text (off: text only).
        pooling: ``"attention"`` or ``"mean"`` over the history.
        temperature: InfoNCE's tau.
        sampling_correction: subtract log q_j in training (see above).
        item_bias: learn a per-item bias.
        profile_dim: size of profile-text vectors (0: no profile).
    Shapes:
        ``call({"history": [batch, max_history] item ids, "item": [batch] item ids})`` -> [batch, 2,
        embedding_dim + 1]; ``scores(history)`` -> [batch, num_items]; ``recommend(history, k)`` ->
        (ids [batch, k], scores [batch, k]).

    Example:
        >>> model = TwoTowerRecommender(num_items=5, text_dim=4, embedding_dim=8, max_history=3)
        >>> model.build()
        >>> model.set_item_text_embeddings(np.eye(5, 4, dtype="float32"))
        >>> history = keras.ops.array([[0, 2, -1]])                 # -1: padding
        >>> ids, scores = model.recommend(history, k=3)
        >>> sorted(int(i) for i in ids[0])                           # the unseen items
        [1, 3, 4]
        >>> tuple(model({"history": history, "item": keras.ops.array([1])}).shape)
        (1, 2, 9)
    """

    config_fields = (
        "num_items", "text_dim", "embedding_dim", "max_history", "use_item_ids", "pooling", "temperature",
        "sampling_correction", "item_bias", "profile_dim",
    )

    def __init__(self, num_items: int, text_dim: int, embedding_dim: int = 128, max_history: int = 32,
                 use_item_ids: bool = True, pooling: str = "attention", temperature: float = 0.05,
                 sampling_correction: bool = True, item_bias: bool = True, profile_dim: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_choice("pooling", pooling, USER_POOLINGS)
        self.num_items, self.text_dim, self.embedding_dim = int(num_items), int(text_dim), int(embedding_dim)
        self.max_history, self.use_item_ids, self.pooling = int(max_history), bool(use_item_ids), pooling
        self.temperature = float(temperature)
        self.sampling_correction, self.item_bias = bool(sampling_correction), bool(item_bias)
        self.profile_dim = int(profile_dim)
        with sublayer_policy(self):
            self.text_projection = keras.layers.Dense(embedding_dim, name="text_projection")
            self.item_id_embedding = (keras.layers.Embedding(
                num_items, embedding_dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01),
                name="item_id_embedding") if use_item_ids else None)
            self.recency_embedding = keras.layers.Embedding(
                max_history, embedding_dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01),
                name="recency_embedding")
            self.attention_hidden = keras.layers.Dense(embedding_dim, activation="tanh", name="attention_hidden")
            self.attention_score = keras.layers.Dense(1, name="attention_score")
            self.user_projection = keras.layers.Dense(embedding_dim, name="user_projection")
            self.profile_projection = (keras.layers.Dense(embedding_dim, name="profile_projection")
                                       if self.profile_dim else None)

    def build(self, input_shape: Optional[Dict[str, Any]] = None) -> None:
        self.item_text_embeddings = self.add_weight(shape=(self.num_items, self.text_dim), initializer="zeros",
                                                    trainable=False, name="item_text_embeddings", dtype="float32")
        self.item_log_frequency = self.add_weight(shape=(self.num_items,), trainable=False, dtype="float32",
                                                  initializer=keras.initializers.Constant(-np.log(self.num_items)),
                                                  name="item_log_frequency")
        self.item_biases = self.add_weight(shape=(self.num_items,), initializer="zeros", dtype="float32",
                                           trainable=self.item_bias, name="item_biases")
        self.text_projection.build((None, self.text_dim))
        if self.item_id_embedding is not None:
            self.item_id_embedding.build((None,))
        self.recency_embedding.build((None,))
        self.attention_hidden.build((None, None, self.embedding_dim))
        self.attention_score.build((None, None, self.embedding_dim))
        self.user_projection.build((None, self.embedding_dim))
        if self.profile_projection is not None:
            self.profile_projection.build((None, self.profile_dim))
        self.built = True

    def set_item_text_embeddings(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape != (self.num_items, self.text_dim):
            raise ValueError(f"item text embeddings must be [{self.num_items}, {self.text_dim}], got {vectors.shape}")
        self.item_text_embeddings.assign(vectors)

    def set_item_frequencies(self, counts: np.ndarray) -> None:
        """log q_j from item counts (add-one smoothed) for the sampling correction."""
        counts = np.asarray(counts, np.float64) + 1.0
        if counts.shape != (self.num_items,):
            raise ValueError(f"item counts must be [{self.num_items}], got {counts.shape}")
        self.item_log_frequency.assign(np.log(counts / counts.sum()).astype(np.float32))

    def item_vectors(self, item_ids: Any) -> Any:
        """Unit item vectors [..., dim] of item ids (valid ids only)."""
        return self._item_vectors(self._item_ids(item_ids))

    # The public methods check the ids they are given once; these helpers take checked int32 ids.
    def _item_ids(self, item_ids: Any) -> Any:
        return ops.cast(checked_ids(item_ids, self.num_items, "item ids", limit="num_items"), "int32")

    def _history_ids(self, history: Any) -> Any:
        return ops.cast(checked_ids(history, self.num_items, "history", low=-1, limit="-1 pads; num_items"), "int32")

    def _item_vectors(self, ids: Any) -> Any:
        x = self.text_projection(ops.take(self.item_text_embeddings, ids, axis=0))
        if self.item_id_embedding is not None:
            x = x + self.item_id_embedding(ids)
        return unit_vectors(x)

    def all_item_vectors(self) -> Any:
        return self._item_vectors(ops.arange(self.num_items, dtype="int32"))

    def user_vectors(self, history: Any, training: Optional[bool] = None, profile: Optional[Any] = None) -> Any:
        """Unit user vectors [batch, dim] of histories [batch, max_history] (-1 pads, latest last)
        and, for a model with ``profile_dim``, profile vectors [batch, profile_dim]."""
        return self._user_vectors(self._history_ids(history), training, profile)

    def _user_vectors(self, history: Any, training: Optional[bool], profile: Optional[Any]) -> Any:
        valid = history >= 0
        items = self._item_vectors(ops.maximum(history, 0))
        length = ops.sum(ops.cast(valid, "int32"), axis=1, keepdims=True)
        recency = ops.clip(length - 1 - ops.expand_dims(ops.arange(ops.shape(history)[1]), 0), 0, self.max_history - 1)
        x = ops.cast(items, self.compute_dtype) + self.recency_embedding(recency)
        weights = ops.cast(valid, "float32")
        if self.pooling == "attention":
            scores = ops.cast(ops.squeeze(self.attention_score(self.attention_hidden(x)), -1), "float32")
            scores = ops.where(valid, scores, -1e9)
            weights = ops.softmax(scores, axis=-1) * weights
        weights = weights / ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1e-9)
        pooled = ops.cast(ops.sum(ops.cast(x, "float32") * ops.expand_dims(weights, -1), axis=1), self.compute_dtype)
        if self.profile_projection is not None:
            if profile is None:
                raise ValueError("this recommender reads profile vectors: pass profile [batch, profile_dim]")
            pooled = pooled + self.profile_projection(ops.cast(profile, self.compute_dtype))
        return unit_vectors(self.user_projection(pooled))

    def _training_item(self, item_ids: Any, sampled: bool) -> Any:
        """Item vector plus the extra dimension: tau (b_j - log q_j); log q_j only for items that
        reached the batch by frequency (targets), not for chosen hard negatives."""
        ids = self._item_ids(item_ids)
        items = self._item_vectors(ids)
        extra = ops.take(self.item_biases, ids, axis=0) if self.item_bias else ops.zeros_like(items[:, 0])
        if self.sampling_correction and sampled:
            extra = extra - ops.take(self.item_log_frequency, ids, axis=0)
        return ops.concatenate([items, ops.expand_dims(self.temperature * extra, 1)], axis=1)

    def call(self, inputs: Dict[str, Any], training: Optional[bool] = None) -> Any:
        users = self.user_vectors(inputs["history"], training, inputs.get("profile"))
        views = [ops.concatenate([users, ops.ones_like(users[:, :1])], axis=1),
                 self._training_item(inputs["item"], sampled=True)]
        if "negative" in inputs:   # a hard negative per user: a third view for InfoNCELoss
            views.append(self._training_item(inputs["negative"], sampled=False))
        return ops.stack(views, axis=1)

    def scores(self, history: Any, profile: Optional[Any] = None) -> Any:
        """Cosine scores [batch, num_items]; items already in the history get -inf."""
        history = self._history_ids(history)
        scores = ops.matmul(self._user_vectors(history, False, profile), ops.transpose(self.all_item_vectors()))
        if self.item_bias:
            scores = scores + self.temperature * ops.expand_dims(self.item_biases, 0)
        seen = ops.any(ops.expand_dims(history, -1) == ops.reshape(ops.arange(self.num_items), (1, 1, -1)), axis=1)
        return ops.where(seen, -np.inf, scores)

    def recommend(self, history: Any, k: int = 10, profile: Optional[Any] = None):
        """(item ids [batch, k], scores [batch, k]) of the best unseen items."""
        scores, ids = ops.top_k(self.scores(history, profile), k=min(k, self.num_items))
        return ids, scores

    def compile(self, optimizer: Any = "adam", loss: Any = None, **kwargs: Any) -> None:
        super().compile(optimizer=optimizer, loss=loss or InfoNCELoss(self.temperature, symmetric=False), **kwargs)
