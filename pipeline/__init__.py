"""TFX pipelines for rw-tf: definition (pipeline.py), configs, one runner per orchestrator,
custom components and the Transform/Trainer module files."""
