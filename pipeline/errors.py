"""Errors of the pipeline commands, importable without TFX (the CLI catches them before TFX loads)."""


class DataAnomaliesError(RuntimeError):
    """Raised when the examples do not match the schema."""
