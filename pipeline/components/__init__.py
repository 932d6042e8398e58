"""Custom TFX pieces: a JSON Lines ExampleGen executor and a gate that stops runs on anomalies."""
