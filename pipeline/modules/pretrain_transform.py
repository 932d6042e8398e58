"""Transform module of the pretraining pipeline (see rw_tf.data.transform_fns)."""
from rw_tf.config import PretrainingDataConfig
from rw_tf.data.transform_fns import pretraining_preprocessing_fn


def preprocessing_fn(inputs, custom_config):
    data_config = PretrainingDataConfig(max_sequence_length=custom_config["max_sequence_length"],
                                        max_predictions_per_seq=custom_config["max_predictions_per_seq"],
                                        seed=custom_config["seed"])
    return pretraining_preprocessing_fn(inputs, custom_config["vocab_file"], data_config,
                                        alias_file=custom_config.get("alias_file"),
                                        knowledge_dir=custom_config.get("knowledge_dir"))
