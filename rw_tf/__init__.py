"""rw_tf: RefinedWeb knowledge-enhanced language model (Keras 3)."""
