"""Single-pass CPU kernels for the IF neurons, QCFS and the AL level histogram (``_kernel.c``).

The C library is built at install time as an optional extension (``setup.py``); it has no
Python or torch headers and is loaded here with :mod:`ctypes`. Each function below takes
CPU tensors of dtype float32 or float64 and returns ``None`` when it cannot run them (no
library built, another device or dtype, a layout it does not handle): callers then use their
torch code, which gives the same bits. Results are bit-identical to the torch code in
:mod:`pascal_snn.neuron` and :mod:`pascal_snn.qcfs`: the kernels perform the same IEEE
operations in the same order, one element at a time, only fused into one pass.

Threads: a call uses up to ``torch.get_num_threads()`` POSIX threads, split over neurons
(never over time steps), so the thread count changes no result except the summation order
of the QCFS backward's two totals. The library handle is loaded on first use and cached for
the life of the process (:func:`library`); nothing else here holds state.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

__all__ = [
    "Kernels",
    "Tuning",
    "available",
    "level_histogram",
    "library",
    "library_path",
    "pasc_if",
    "pasc_input",
    "qcfs_backward",
    "qcfs_forward",
    "vanilla_if",
    "variants",
]

VERSION = 4  # pascal_kernel_version() of the C source this module was written for
ISAS = ("base", "v2", "v3", "v4")  # x86-64 levels, in pascal_kernel_isa_supported() order
GRAIN = 1 << 18  # bytes of input and output a thread gets at least (smaller: fewer threads)
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_REAL = {torch.float32: ctypes.c_float, torch.float64: ctypes.c_double}
_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_INT = ctypes.c_int
_SIGNATURES = {  # name: (argument types after the REAL-typed ones are filled in, result type)
    "pasc_if": ([_P, _P, _I64, _I64, "real", _I64, _I64, _P, _P, _P, _INT, _I64], _INT),
    "qcfs_forward": ([_P, _P, _I64, "real", _I64, _INT, _I64], _INT),
    "qcfs_backward": ([_P, _P, _P, _I64, "real", _I64, _P, _INT, _I64], _INT),
    "level_histogram": ([_P, _I64, "real", _I64, _P, _INT, _I64], _I64),
    "vanilla_if": ([_P, _P, _P, _I64, "real", _INT, _I64], _INT),
    "pasc_input": ([_P, _I64, "real", _I64, "real", _P, _P, _INT, _I64], _INT),
}


@dataclass(frozen=True)
class Kernels:
    """The loaded library and one instruction-set variant of its kernels (``isa``)."""

    lib: ctypes.CDLL
    isa: str

    def fn(self, name: str, dtype: torch.dtype) -> Any:
        """The C function ``<name>_<f32|f64>_<isa>`` with its signature declared."""
        return _function(self, name, dtype)


@functools.cache
def _function(kernels: Kernels, name: str, dtype: torch.dtype) -> Any:
    fn = getattr(kernels.lib, f"{name}_{_SUFFIX[dtype]}_{kernels.isa}")
    argtypes, restype = _SIGNATURES[name]
    fn.argtypes = [_REAL[dtype] if a == "real" else a for a in argtypes]
    fn.restype = restype
    return fn


def library_path() -> Path | None:
    """The built ``_kernel`` shared library next to this file, if there is one."""
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_kernel{suffix}"
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _load() -> ctypes.CDLL | None:
    """The kernel library, loaded once per process and cached (a read-only handle)."""
    path = library_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
        lib.pascal_kernel_version.restype = _INT
        lib.pascal_kernel_isa_supported.argtypes = [_INT]
        lib.pascal_kernel_isa_supported.restype = _INT
    except (OSError, AttributeError):
        return None
    if lib.pascal_kernel_version() != VERSION:
        return None  # a stale build of another interface: as if not built
    return lib


def variants() -> list[Kernels]:
    """Every variant this CPU runs, lowest instruction set first (empty: no library)."""
    lib = _load()
    if lib is None:
        return []
    out = []
    for level, isa in enumerate(ISAS):
        if lib.pascal_kernel_isa_supported(level) and hasattr(lib, f"pasc_if_f32_{isa}"):
            out.append(Kernels(lib, isa))
    return out


@functools.cache
def library() -> Kernels | None:
    """The fastest variant this CPU runs, or None when the library is not built (cached)."""
    found = variants()
    return found[-1] if found else None


def available() -> bool:
    """True when the kernel library is built and loads."""
    return library() is not None


def _dense(t: torch.Tensor) -> bool:
    """True when ``t``'s elements fill its storage span without gaps or overlaps (any order)."""
    return t.numel() == 0 or _dense_layout(t.shape, t.stride())


def _dense_layout(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """:func:`_dense` for a shape and its strides (no tensor view needed)."""
    expected = 1
    for stride, size in sorted((st, s) for s, st in zip(shape, strides) if s != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _runs_on(kernels: Kernels | None, *tensors: torch.Tensor) -> Kernels | None:
    """``kernels`` (default: :func:`library`) if every tensor is CPU float32/float64 alike."""
    dtype = tensors[0].dtype
    if dtype not in _SUFFIX:
        return None
    if any(t.device.type != "cpu" or t.dtype != dtype for t in tensors):
        return None
    return kernels if kernels is not None else library()


def _threads(threads: int | None) -> int:
    return max(1, torch.get_num_threads() if threads is None else threads)


class Tuning(NamedTuple):
    """How a call runs, never what it returns: which variant, how many threads at most
    (default ``torch.get_num_threads()``), and the least bytes per thread (``grain``)."""

    kernels: Kernels | None = None
    threads: int | None = None
    grain: int = GRAIN


DEFAULT = Tuning()  # the best variant, torch's thread count, the default grain


def pasc_if(
    x: torch.Tensor,
    spike: float,
    L: int,
    steps: int,
    train: bool,
    count: bool,
    tuning: Tuning = DEFAULT,
    out: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, tuple[int, int, int]] | None:
    """Algorithm 1 on ``x`` ``[T_in, ...]`` with ``θ* = spike``; ``steps`` stage-2 steps.

    Returns ``(train [L, ...] or None, clamp(count, 0, L) int64 or None, (excitatory,
    inhibitory, output))``, or None when the kernel cannot run ``x`` here. Each step of ``x``
    must be dense (any dimension order, the same for every step); the outputs take that
    order. ``out`` (with ``train``) receives the train instead of a new tensor: laid out like
    the result would be, and either disjoint from ``x`` or ``x`` itself (its first L steps)
    when ``T_in ≥ L`` — each neuron reads all its inputs before it writes, and neurons never
    share storage, so the train may overwrite the input it came from.

    ``y`` (same shape and layout as ``x``) is added to ``x`` step by step as the neuron reads
    it: the result is that of ``x + y`` (one IEEE addition per element, as torch's add) fed
    to the neuron, without that sum ever being stored. ``out`` must not overlap ``y``.
    """
    if x.dim() < 1 or (k := _runs_on(tuning.kernels, x)) is None:
        return None
    if y is not None and (
        _runs_on(k, x, y) is None or y.shape != x.shape or y.stride() != x.stride()
    ):
        return None
    t_in, step_shape, step_strides = x.shape[0], tuple(x.shape[1:]), tuple(x.stride()[1:])
    n = math.prod(step_shape)
    dense = x.is_contiguous() or _dense_layout(step_shape, step_strides)  # the first: cheap
    if t_in < 1 or n == 0 or not dense:
        return None
    if t_in > 1 and x.stride(0) != n:
        return None
    if t_in + steps + L >= 1 << 29:  # the float32 kernel counts spikes in 32-bit lanes
        return None
    if out is not None:
        _check_out(out, x, L, n, step_strides)
        if y is not None and _overlap(out, L * n, y, t_in * n):
            raise ValueError("out overlaps y")
    elif train:
        out = torch.empty_strided((L, *step_shape), (n, *step_strides), dtype=x.dtype)
    levels = None
    if count:
        levels = torch.empty_strided(step_shape, step_strides, dtype=torch.int64)
    totals = (ctypes.c_int64 * 3)()
    rc = k.fn("pasc_if", x.dtype)(
        x.data_ptr(),
        y.data_ptr() if y is not None else None,
        t_in,
        n,
        spike,
        L,
        steps,
        out.data_ptr() if train and out is not None else None,
        levels.data_ptr() if levels is not None else None,
        ctypes.addressof(totals),
        _threads(tuning.threads),
        tuning.grain,
    )
    if rc != 0:
        return None
    return (out if train else None), levels, (totals[0], totals[1], totals[2])


def pasc_input(
    x: torch.Tensor, theta: float, L: int, spike: float, tuning: Tuning = DEFAULT
) -> tuple[torch.Tensor, tuple[int, int, int]] | None:
    """The input layer (paper Algorithm 2) on ``x``, one step ``[...]`` of real values.

    ``k = floor(x·L/θ + ½)`` with QCFS's operations in its order; returns the thermometer
    train of ``clamp(k, 0, L)`` (``[L, ...]``, values ``1·spike`` and ``0·spike``, each step
    laid out like ``x``) and ``(excitatory, inhibitory, output)``: ``Σ clamp(k, 0, L)``,
    ``Σ clamp(−k, 0, L − 1)`` and the excitatory total again. None if it cannot run here
    (also when ``x`` holds a NaN: torch's result for it is torch's to define).
    """
    if (k := _runs_on(tuning.kernels, x)) is None or x.numel() == 0 or not _dense(x):
        return None
    if L >= 1 << 21:  # the kernel sums a block of 512 counts in 32-bit lanes
        return None
    n = x.numel()
    train = torch.empty_strided((L, *x.shape), (n, *x.stride()), dtype=x.dtype)
    totals = (ctypes.c_int64 * 2)()
    rc = k.fn("pasc_input", x.dtype)(
        x.data_ptr(),
        n,
        theta,
        L,
        spike,
        train.data_ptr(),
        ctypes.addressof(totals),
        _threads(tuning.threads),
        tuning.grain,
    )
    if rc != 0:
        return None
    return train, (totals[0], totals[1], totals[0])


def _overlap(a: torch.Tensor, a_elements: int, b: torch.Tensor, b_elements: int) -> bool:
    """True when the spans of ``a_elements`` and ``b_elements`` elements from the two data
    pointers intersect (same element size)."""
    size = a.element_size()
    a_lo, b_lo = a.data_ptr(), b.data_ptr()
    return a_lo < b_lo + b_elements * size and b_lo < a_lo + a_elements * size


def _check_out(
    out: torch.Tensor, x: torch.Tensor, L: int, n: int, step_strides: tuple[int, ...]
) -> None:
    """Raise ValueError unless ``out`` can take the train of ``x`` (see :func:`pasc_if`)."""
    if out.shape != (L, *x.shape[1:]) or out.dtype != x.dtype or out.device != x.device:
        raise ValueError(f"out must be {x.dtype} [{L}, *{tuple(x.shape[1:])}] on {x.device}")
    if (L > 1 and out.stride(0) != n) or out.stride()[1:] != step_strides:
        raise ValueError("out must have the layout of the train: x's steps, one after another")
    size = x.element_size()
    x_lo, out_lo = x.data_ptr(), out.data_ptr()
    x_hi, out_hi = x_lo + x.shape[0] * n * size, out_lo + L * n * size
    if out_lo == x_lo:  # the same steps' layout (checked above): x itself
        if x.shape[0] < L:
            raise ValueError(f"the train of {L} steps does not fit in {x.shape[0]} input steps")
    elif out_lo < x_hi and x_lo < out_hi:
        raise ValueError("out overlaps x other than as x itself")


def vanilla_if(
    x: torch.Tensor,
    mem: torch.Tensor,
    theta: float,
    out: torch.Tensor | None = None,
    tuning: Tuning = DEFAULT,
) -> torch.Tensor | None:
    """One step of the vanilla IF neuron, ``mem`` updated in place; returns the spikes.

    ``m = mem + x; f = [m ≥ θ]; mem ← m − f·θ; spikes = f·θ`` (``f`` 0 or 1 in ``x``'s dtype),
    the operations of :func:`pascal_snn.neuron.vanilla_if_step`. ``mem`` and ``out`` must have
    ``x``'s shape, dtype and layout; ``out`` may be ``x`` itself. None if it cannot run here.
    """
    if (k := _runs_on(tuning.kernels, x, mem)) is None or not _dense(x):
        return None
    if mem.shape != x.shape or mem.stride() != x.stride():
        return None
    if out is None:
        out = torch.empty_like(x)
    elif out.shape != x.shape or out.stride() != x.stride() or out.dtype != x.dtype:
        raise ValueError(f"out must be {x.dtype} {tuple(x.shape)} laid out like x")
    args = (x.data_ptr(), mem.data_ptr(), out.data_ptr(), x.numel(), theta)
    if k.fn("vanilla_if", x.dtype)(*args, _threads(tuning.threads), tuning.grain) != 0:
        return None
    return out


def qcfs_forward(
    x: torch.Tensor, theta: float, L: int, tuning: Tuning = DEFAULT
) -> torch.Tensor | None:
    """``θ·clamp(floor(x·L/θ + ½)/L, 0, 1)`` in one pass, or None if it cannot run here."""
    if (k := _runs_on(tuning.kernels, x)) is None or not _dense(x):
        return None
    y = torch.empty_like(x)
    args = (x.data_ptr(), y.data_ptr(), x.numel(), theta, L)
    if k.fn("qcfs_forward", x.dtype)(*args, _threads(tuning.threads), tuning.grain) != 0:
        return None
    return y


def qcfs_backward(
    grad: torch.Tensor, x: torch.Tensor, theta: float, L: int, tuning: Tuning = DEFAULT
) -> tuple[torch.Tensor, float, float] | None:
    """``(grad·m, Σ grad·c, Σ grad·m·x)`` with ``m``, ``c`` recomputed from ``x``.

    ``c = clamp(v, 0, 1)`` and ``m = [0 ≤ v ≤ 1]`` for ``v = floor(x·L/θ + ½)/L`` (see
    :mod:`pascal_snn.qcfs`). The products are rounded in the tensors' dtype and summed in
    float64. None if it cannot run here.
    """
    if (k := _runs_on(tuning.kernels, grad, x)) is None or not _dense(x):
        return None
    if grad.shape != x.shape:
        return None
    if grad.stride() != x.stride():
        grad = torch.empty_like(x).copy_(grad)
    gx = torch.empty_like(x)
    sums = (ctypes.c_double * 2)()
    args = (grad.data_ptr(), x.data_ptr(), gx.data_ptr(), x.numel(), theta, L)
    fn = k.fn("qcfs_backward", x.dtype)
    if fn(*args, ctypes.addressof(sums), _threads(tuning.threads), tuning.grain) != 0:
        return None
    return gx, sums[0], sums[1]


def level_histogram(
    h: torch.Tensor, theta: float, L: int, hist: torch.Tensor, tuning: Tuning = DEFAULT
) -> int | None:
    """Add the level counts of ``h`` (``k = round(h·L/θ)``, half to even) to ``hist``.

    ``hist`` is a contiguous CPU int64 tensor of ``L + 1`` bins. Returns how many indices fell
    outside ``0 … L`` (those are not counted), or None if it cannot run here (then ``hist`` is
    unchanged).
    """
    if (k := _runs_on(tuning.kernels, h)) is None or not _dense(h) or L >= 1 << 20:
        return None  # (bin indices are floats there: exact below 2^20 with room to spare)
    if hist.dtype != torch.int64 or hist.device.type != "cpu" or not hist.is_contiguous():
        return None
    if hist.numel() != L + 1:
        raise ValueError(f"hist needs L + 1 = {L + 1} bins, got {hist.numel()}")
    args = (h.data_ptr(), h.numel(), theta, L, hist.data_ptr())
    bad = int(k.fn("level_histogram", h.dtype)(*args, _threads(tuning.threads), tuning.grain))
    return None if bad < 0 else bad
