"""The trained Keras mask classifier for the worker: N face crops in, N probability rows out, one call."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from maskwatch.core.labels import CLASSES
from maskwatch.models.classifier import DEFAULT_MODEL_PATH
from maskwatch.models.crops import resize_batch

MAX_CHUNK = 256
"""Largest number of crops sent through the network at once (bounds memory on huge batches)."""
RUNTIMES = ("auto", "tflite", "tensorflow")

log = logging.getLogger(__name__)


class KerasMaskClassifier:
    """A ``.keras`` model (RGB 0..255 input, softmax over :data:`models.labels.CLASSES`) behind
    :class:`models.classifier.MaskClassifier`.

    The input size is read from the model file. ``predict`` resizes all crops into one uint8
    array and runs the network once per batch, on one of two runtimes:

    - ``tflite``: the same graph converted at load time (about a second) and run by TensorFlow
      Lite's XNNPACK kernels, 2-4x the crops per second of TensorFlow on a CPU (the same
      probabilities within 1e-4, ``tests/test_classifier_model.py``);
    - ``tensorflow``: a compiled ``tf.function`` (``model.predict`` costs several milliseconds of
      overhead per call, too much for a batch of one face); it runs on a GPU when TensorFlow sees one.

    ``auto`` picks ``tensorflow`` when TensorFlow sees a GPU, else ``tflite``.
    """

    classes = CLASSES
    placeholder = False

    def __init__(self, model, name: str = "keras", runtime: str = "auto", threads: int | None = None):
        import tensorflow as tf

        if runtime not in RUNTIMES:
            raise ValueError(f"classifier runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")

        shape = tuple(model.input_shape)
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or shape[1] is None:
            raise ValueError(f"expected a model with square RGB input (None, S, S, 3), got {shape}")
        if tuple(model.output_shape)[-1] != len(CLASSES):
            raise ValueError(
                f"expected {len(CLASSES)} outputs ({', '.join(CLASSES)}), got {model.output_shape}"
            )
        self.model = model
        self.name = name
        self.input_size = int(shape[1])
        spec = tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.uint8)

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def _probabilities(x):
            return model(tf.cast(x, tf.float32), training=False)

        if runtime == "auto":
            runtime = "tensorflow" if tf.config.list_physical_devices("GPU") else "tflite"
        self.runtime = runtime
        self._probabilities: Callable[[np.ndarray], np.ndarray] = (
            _tflite_runner(_probabilities, threads or os.cpu_count() or 1)
            if runtime == "tflite"
            else lambda x: _probabilities(x).numpy()
        )

    @classmethod
    def load(
        cls, path: Path | None = None, runtime: str = "auto", threads: int | None = None
    ) -> KerasMaskClassifier:
        """Load ``path`` (default: the model shipped in ``models/``); the name carries its sha256 prefix."""
        import keras

        path = Path(path) if path is not None else DEFAULT_MODEL_PATH
        if not path.is_file():
            raise FileNotFoundError(f"mask classifier model not found: {path}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        model = keras.models.load_model(path, compile=False)
        return cls(model, name=f"keras:{path.stem}:{digest[:12]}", runtime=runtime, threads=threads)

    def preprocess(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB batch of BGR uint8 crops; rejects anything that is not an HxWx3 image."""
        for i, c in enumerate(crops):
            if (
                not isinstance(c, np.ndarray)
                or c.ndim != 3
                or c.shape[2] != 3
                or c.dtype != np.uint8
                or not c.size
            ):
                desc = (
                    f"{c.dtype} array of shape {c.shape}" if isinstance(c, np.ndarray) else type(c).__name__
                )
                raise ValueError(f"crop {i}: expected a non-empty HxWx3 BGR uint8 array, got {desc}")
        return resize_batch(list(crops), self.input_size)

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 3) float32 probabilities (rows follow ``classes``) for N BGR uint8 crops."""
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        x = self.preprocess(crops)
        return self.predict_preprocessed(x)

    def predict_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for an already resized (N, S, S, 3) uint8 RGB batch."""
        parts = [self._probabilities(x[i : i + MAX_CHUNK]) for i in range(0, len(x), MAX_CHUNK)]
        return np.concatenate(parts).astype(np.float32, copy=False)


def _tflite_runner(function, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """The ``tf.function`` (uint8 batch -> probabilities) converted to TensorFlow Lite, as a thread-safe callable.

    The interpreter's input is resized to each batch's size (cheap once its arena has grown).
    """
    import tensorflow as tf

    # the function itself must be the trackable object: with the Keras model there, the weights come out NaN
    flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], function
    ).convert()
    with warnings.catch_warnings():  # tf.lite.Interpreter is marked deprecated in favour of ai-edge-litert
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=threads)
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    lock = threading.Lock()
    shape: tuple[int, ...] = ()

    def run(x: np.ndarray) -> np.ndarray:
        nonlocal shape
        with lock:
            if x.shape != shape:
                interpreter.resize_tensor_input(inp, x.shape)
                interpreter.allocate_tensors()
                shape = x.shape
            interpreter.set_tensor(inp, np.ascontiguousarray(x))
            interpreter.invoke()
            return interpreter.get_tensor(out).copy()

    log.info("mask classifier: TensorFlow Lite runtime, %d threads", threads)
    return run
