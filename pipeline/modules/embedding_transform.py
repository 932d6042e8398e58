"""Transform module of the sentence-embedding pipeline (see rw_tf.data.transform_fns)."""
from rw_tf.data.transform_fns import PairTransformConfig, pair_preprocessing_fn


def preprocessing_fn(inputs, custom_config):
    return pair_preprocessing_fn(inputs, PairTransformConfig.from_dict(custom_config, "the Transform's custom_config"))
