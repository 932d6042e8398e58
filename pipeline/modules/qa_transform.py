"""Transform module of the extractive-QA pipeline (see rw_tf.data.transform_fns)."""
from rw_tf.data.transform_fns import QATransformConfig, qa_preprocessing_fn


def preprocessing_fn(inputs, custom_config):
    return qa_preprocessing_fn(inputs, QATransformConfig.from_dict(custom_config, "the Transform's custom_config"))
