"""Corpora and input pipelines (TensorFlow); kept apart from modeling code."""
