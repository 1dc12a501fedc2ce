"""nas_tf: Neural Architecture Search with Reinforcement Learning (Zoph & Le, ICLR 2017)
for TensorFlow 2 and Keras 3."""

from setuptools import find_packages, setup

setup(
    name="nas_tf",
    version="0.1.0",
    description="Neural Architecture Search with Reinforcement Learning for TensorFlow 2 / Keras 3",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["nas_tf", "nas_tf.*", "cells", "cells.*",
                                    "cnn_space", "cnn_space.*"]),
    python_requires=">=3.11",
    install_requires=[
        "numpy>=1.26",
        "absl-py>=2.0",
        "keras>=3.8",  # 3.8: fit scales the loss by the replicas (keras-team/keras#19891)
        "tensorflow-datasets>=4.9",
        "tensorboard>=2.16",
    ],
    extras_require={
        # TensorFlow itself is an extra so that the CPU or the GPU build can be chosen.
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "ray": ["ray[default]>=2.9"],
        "optuna": ["optuna>=3.4"],  # --algorithm=tpe
        # nas_tf.keras_tuner: the controller as a KerasTuner oracle.
        "keras-tuner": ["keras-tuner>=1.4,<1.5"],
        "test": ["pytest>=7", "pytest-xdist>=3", "ruff>=0.4", "pillow", "matplotlib>=3.7",
                 "optuna>=3.4", "keras-tuner>=1.4,<1.5"],
        # Pictures of a search (nas_tf.report, the end of nas_tf.run): matplotlib.
        "report": ["matplotlib>=3.7"],
    },
    entry_points={
        "console_scripts": ["nas_tf=nas_tf.run:entry_point"],
        # Search spaces plug into the spine through this group (nas_tf.plugins); a
        # separately installed package adds a space the same way.
        "nas_tf.spaces": [
            "nb201 = cnn_space.nb201.plugin:PLUGIN",
            "rnn = cells.plugin:PLUGIN",
            "cnn = cnn_space.plugin:PLUGIN",
        ],
    },
)
