"""Transform module of the recommendation pipeline (see rw_tf.data.transform_fns)."""
from rw_tf.data.transform_fns import InteractionTransformConfig, interaction_preprocessing_fn


def preprocessing_fn(inputs, custom_config):
    config = InteractionTransformConfig.from_dict(custom_config, "the Transform's custom_config")
    return interaction_preprocessing_fn(inputs, config)
