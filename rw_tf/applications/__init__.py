"""Applications built on trained models (writing assistance, ...)."""
