"""TFMD schemas of the pipelines' raw examples, one folder per pipeline kind (``<kind>/schema.pbtxt``).

Installed as ``rw_tf_schemas`` (package data); ``schema_file(kind)`` is the path of one.
"""
import os

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))


def schema_file(kind: str) -> str:
    path = os.path.join(SCHEMA_DIR, kind, "schema.pbtxt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no schema for pipeline kind {kind!r} ({path})")
    return path
