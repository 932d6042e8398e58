"""Transform module of the pretraining pipeline (see rw_tf.data.transform_fns)."""
from rw_tf.data.transform_fns import PretrainingTransformConfig, pretraining_preprocessing_fn


def preprocessing_fn(inputs, custom_config):
    config = PretrainingTransformConfig.from_dict(custom_config, "the Transform's custom_config")
    return pretraining_preprocessing_fn(inputs, config)
