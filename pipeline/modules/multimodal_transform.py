"""Transform module of the image-text pipeline (see rw_tf.data.transform_fns)."""
from rw_tf.data.transform_fns import ImageTextTransformConfig, image_text_preprocessing_fn


def preprocessing_fn(inputs, custom_config):
    return image_text_preprocessing_fn(inputs, ImageTextTransformConfig.from_dict(
        custom_config, "the Transform's custom_config"))
