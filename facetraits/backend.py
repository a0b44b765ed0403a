"""TensorFlow set-up, done once for the whole package: quiet logs, graph mode, seeds, device.

iNNvestigate 2 builds its analyzers as TF1 graphs and needs eager execution disabled before any
Keras model exists. Disabling it here, the one place every TensorFlow user in the package
imports, keeps training, feature extraction and explanation in the same mode, so a model
trained by one script can be explained by another (and by the tests, in one process).
"""
import os
import random
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF 2.14 prints harmless CUDA-plugin errors at import

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402

tf.compat.v1.disable_eager_execution()
tf.get_logger().setLevel("ERROR")
# Keras' v1 (graph-mode) training loop warns about its own internals on every fit.
warnings.filterwarnings("ignore", message=".*state_updates.*", category=UserWarning)
# .h5 is the format iNNvestigate and the reference study use; Keras calls it legacy on every save.
warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file", category=UserWarning)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow's graph-level RNG (Keras shuffling uses NumPy).

    Derived seeds (seed + fold, seed + repeat) can pass np.random's limit of 2**32 - 1: they wrap."""
    seed %= 2**32
    random.seed(seed)
    np.random.seed(seed)
    tf.compat.v1.set_random_seed(seed)


def device_name() -> str:
    """What TensorFlow runs on, for the run record: CPU, or the names of the GPUs it sees."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    return "GPU: " + ", ".join(names)


def reset_graph(seed: int) -> None:
    """Drop every model built so far (graph mode keeps them all alive) and re-seed."""
    keras.backend.clear_session()
    seed_everything(seed)


__all__ = ["tf", "keras", "seed_everything", "device_name", "reset_graph"]
