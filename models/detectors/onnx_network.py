"""Run an ONNX network on the best runtime this machine has: OpenVINO or ONNX Runtime (CPU or CUDA).

``runtime="auto"`` picks ONNX Runtime's CUDA provider when a CUDA GPU is visible to it, else
OpenVINO when it is installed (fastest on x86-64 and ARM CPUs, int8 on VNNI), else ONNX
Runtime's CPU provider. Inputs of a new shape compile once (OpenVINO) and are cached; so that a worker
whose batches and region counts vary meets only a handful of shapes, OpenVINO runs a batch as chunks
whose sizes are powers of two (7 inputs: 4 + 2 + 1), at most :data:`MAX_CHUNK` each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from maskwatch.models.detectors.base import WeightsError

MAX_CHUNK = 4
"""Largest batch one OpenVINO call gets (a power of two). On the CPU a larger batch is no faster per
input (bf16, 2 threads, ms per input: 320x320 5.3 / 4.8 / 5.3 at batch 1 / 4 / 8; 1280x736 53 / 54 / 55),
and each batch size is another compiled shape."""

Runtime = Literal["auto", "openvino", "onnxruntime", "onnxruntime-cuda"]
RUNTIMES: tuple[str, ...] = ("auto", "openvino", "onnxruntime", "onnxruntime-cuda")


def verified(path: Path, sha256: str, detector: str, fix: str) -> Path:
    """``path`` if it exists with the pinned ``sha256``; else :class:`WeightsError` naming the file and the fix."""
    if not path.is_file():
        raise WeightsError(f"{detector}: model file {path} does not exist; {fix}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise WeightsError(
            f"{detector}: model file {path} has sha256 {digest[:12]}…, expected {sha256[:12]}…; {fix}"
        )
    return path


def _ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def choose_runtime(
    runtime: Runtime,
    providers: Callable[[], Sequence[str]] = _ort_providers,
    has_openvino: Callable[[], bool] = _has_openvino,
) -> str:
    """The runtime ``auto`` resolves to here (``providers``/``has_openvino`` are the probes; tests pass their own)."""
    if runtime != "auto":
        return runtime
    available = providers()
    if "CUDAExecutionProvider" in available:
        return "onnxruntime-cuda"
    if has_openvino():
        return "openvino"
    if "CPUExecutionProvider" in available:
        return "onnxruntime"
    raise WeightsError("no ONNX runtime is installed: pip install openvino (CPU) or onnxruntime")


class OnnxNetwork:
    """A callable ONNX model: ``net({"x": batch}) -> [outputs...]`` in the file's output order."""

    def __init__(
        self, path: Path, runtime: Runtime = "auto", threads: int | None = None, bf16: bool = False
    ) -> None:
        """``bf16``: let OpenVINO compute in bfloat16 where the CPU has it (AVX512_BF16, AMX); else f32."""
        self.path = Path(path)
        self.runtime = choose_runtime(runtime)
        self.threads = threads
        self.bf16 = bf16
        try:
            self._run = self._openvino() if self.runtime == "openvino" else self._onnxruntime()
        except Exception as e:  # the runtimes raise their own types for unreadable files
            first = str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__
            raise WeightsError(
                f"{self.path} is not a loadable ONNX network ({self.runtime}: {first})"
            ) from None

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, np.float32)
        if self.runtime != "openvino" or len(x) <= 1:
            return self._run(x)
        parts = [self._run(x[a:b]) for a, b in chunks(len(x))]
        return parts[0] if len(parts) == 1 else [np.concatenate(out) for out in zip(*parts, strict=True)]

    @property
    def compiled_shapes(self) -> int:
        """How many input shapes have been compiled (OpenVINO; 0 for ONNX Runtime)."""
        return len(getattr(self._run, "compiled", ()))

    def _onnxruntime(self) -> Callable[[np.ndarray], list[np.ndarray]]:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if self.runtime == "onnxruntime-cuda"
            else ["CPUExecutionProvider"]
        )
        session = ort.InferenceSession(str(self.path), opts, providers=providers)
        name = session.get_inputs()[0].name
        return lambda x: list(session.run(None, {name: x}))

    def _openvino(self) -> Callable[[np.ndarray], list[np.ndarray]]:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(self.path))
        name = model.inputs[0].get_any_name()
        self.bf16 = self.bf16 and "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        config: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if self.bf16 else "f32",
        }
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        compiled: dict[tuple[int, ...], object] = {}

        def run(x: np.ndarray) -> list[np.ndarray]:
            request = compiled.get(x.shape)
            if request is None:
                model.reshape({name: list(x.shape)})
                request = compiled[x.shape] = core.compile_model(model, "CPU", config).create_infer_request()
            result = request.infer({name: x})  # type: ignore[attr-defined]
            return [np.array(v) for v in result.values()]  # copies: the request reuses its buffers

        run.compiled = compiled  # type: ignore[attr-defined]
        return run


def chunks(n: int, largest: int = MAX_CHUNK) -> list[tuple[int, int]]:
    """``[start, end)`` ranges covering ``n`` items, each a power of two of at most ``largest``, largest
    first (13, largest 16 -> 8, 4, 1)."""
    out, start = [], 0
    while start < n:
        size = min(largest, 1 << ((n - start).bit_length() - 1))
        out.append((start, start + size))
        start += size
    return out
