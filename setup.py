"""rw-tf: RefinedWeb knowledge-enhanced language model on TensorFlow/Keras 3, TFX and TF Serving.

The exact, tested versions live in requirements/requirements.lock (generated with `make lock`);
the ranges below are the direct dependencies the code imports.
"""
from setuptools import find_packages, setup

setup(
    name="rw-tf",
    version="0.1.0",
    description="RefinedWeb knowledge-enhanced language model: Keras 3 library, TFX pipeline, TF Serving",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["rw_tf", "rw_tf.*", "pipeline", "pipeline.*", "serving", "serving.*"]),
    package_data={"": ["*.pbtxt"]},
    install_requires=[
        "tensorflow>=2.16,<2.17",
        "keras>=3.3",
        "tensorflow-text>=2.16,<2.17",
        "tfx[kfp]==1.16.0",
        "tensorflow-serving-api>=2.16,<2.17",
        "apache-beam[gcp]==2.61.0",
        "tf-keras",
        "dill",
    ],
    extras_require={"test": ["pytest", "pytest-xdist"]},
    entry_points={"console_scripts": ["rw-tf=rw_tf.cli:main"]},
)
