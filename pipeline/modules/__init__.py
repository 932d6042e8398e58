"""TFX module files: each binds pipeline configuration to functions in rw_tf / serving."""
