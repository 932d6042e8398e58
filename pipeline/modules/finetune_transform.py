"""Transform module of the fine-tuning pipeline (see rw_tf.data.transform_fns)."""
from rw_tf.data.transform_fns import classification_preprocessing_fn


def preprocessing_fn(inputs, custom_config):
    return classification_preprocessing_fn(inputs, custom_config["vocab_file"],
                                           custom_config["max_sequence_length"])
