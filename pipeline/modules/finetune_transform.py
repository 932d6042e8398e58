"""Transform module of the fine-tuning pipeline (see rw_tf.data.transform_fns)."""
from rw_tf.data.transform_fns import TextTransformConfig, classification_preprocessing_fn


def preprocessing_fn(inputs, custom_config):
    return classification_preprocessing_fn(inputs, TextTransformConfig.from_dict(custom_config, "custom_config"))
