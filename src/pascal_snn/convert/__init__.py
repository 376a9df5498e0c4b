"""ANN → SNN conversion over the model's ``torch.fx`` graph (SPEC §3, §4).

A fixed pipeline: copy the model and trace it (QCFS kept as a leaf) → check every operation
against the one table of operations (:mod:`.ops`; needs no shapes) → for each per-sample input
shape, annotate a copy of the graph once (:mod:`.annotate`: train lengths, shapes and the
batch dim, call sites, thermometer codes, BatchNorm folding) → rewrite it for the mode
(:mod:`.pasc` or :mod:`.vanilla`), reading only the annotations → wrap (:mod:`.network`).

Nothing here depends on a list of known model classes: any model built from the operations of
the table converts, and every layer's ``L`` is read from its QCFS module. Anything that would
not be exact is refused with a :class:`~pascal_snn.errors.ConversionError` naming the node.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Sequence
from typing import Literal, overload

import torch
from torch import fx, nn

from pascal_snn.convert.annotate import Annotation, annotate, check, info
from pascal_snn.convert.network import ConvertedNetwork, PascNetwork, VanillaNetwork, check_input
from pascal_snn.convert.ops import SUPPORTED, Kind
from pascal_snn.errors import ConversionError
from pascal_snn.graph import trace
from pascal_snn.qcfs import QCFS, keep_forward_order

__all__ = [
    "SUPPORTED",
    "Annotation",
    "Kind",
    "Mode",
    "PascNetwork",
    "VanillaNetwork",
    "annotate_model",
    "check_input",
    "convert",
    "info",
]


class Mode(str, enum.Enum):
    """Conversion mode: PASC (exact at T = L) or the vanilla IF baseline of Bu et al."""

    PASC = "pasc"
    VANILLA = "vanilla"


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return trace(model)
    except Exception as exc:  # fx raises several types for data-dependent control flow
        raise ConversionError(
            f"the model could not be traced with torch.fx ({type(exc).__name__}: {exc}); "
            "conversion needs a forward() without data-dependent Python control flow"
        ) from exc


@overload
def convert(
    model: nn.Module,
    mode: Literal[Mode.PASC, "pasc"] = ...,
    timesteps: None = None,
    *,
    example_input: torch.Tensor | None = None,
) -> PascNetwork: ...


@overload
def convert(
    model: nn.Module,
    mode: Literal[Mode.VANILLA, "vanilla"],
    timesteps: int,
    *,
    example_input: torch.Tensor | None = None,
) -> VanillaNetwork: ...


@overload
def convert(
    model: nn.Module,
    mode: Mode | str = ...,
    timesteps: int | None = None,
    *,
    example_input: torch.Tensor | None = None,
) -> PascNetwork | VanillaNetwork: ...


def convert(
    model: nn.Module,
    mode: Mode | str = Mode.PASC,
    timesteps: int | None = None,
    *,
    example_input: torch.Tensor | None = None,
) -> PascNetwork | VanillaNetwork:
    """Convert a QCFS-trained ANN into a spiking network; ``model`` itself is not changed.

    ``mode="pasc"``: logits equal the ANN's (up to float rounding) with T = L per layer.
    ``mode="vanilla"``: the plain IF baseline, run for ``timesteps`` steps.
    ``example_input``: a batch of the inputs to come; with it the network is built (and every
    check done) at once, otherwise on the first call, per per-sample input shape.
    Raises :class:`ConversionError` naming any operation that has no exact spiking form, and
    :class:`~pascal_snn.errors.DataError` for an ``example_input`` the model rejects.
    """
    try:
        mode = Mode(mode)
    except ValueError:
        raise ConversionError(f"mode must be 'pasc' or 'vanilla', got {mode!r}") from None
    if mode is Mode.VANILLA:
        if (
            timesteps is None
            or isinstance(timesteps, bool)
            or not isinstance(timesteps, int)
            or timesteps < 1
        ):
            raise ConversionError(f"vanilla conversion needs timesteps >= 1, got {timesteps!r}")
    elif timesteps is not None:
        raise ConversionError("timesteps applies to mode='vanilla' only; PASC runs T = L per layer")
    if not any(isinstance(m, QCFS) for m in model.modules()):
        raise ConversionError(
            "the model has no QCFS layer; train it with pascal_snn.QCFS "
            "activations before converting"
        )
    ann = copy.deepcopy(model).eval()
    ann.requires_grad_(False)
    source = _trace(ann)
    keep_forward_order(model, source.graph)  # qcfs_layers(model) need not trace it again
    check(source)
    net: PascNetwork | VanillaNetwork
    if mode is Mode.PASC:
        net = PascNetwork(source)
    else:
        assert timesteps is not None
        net = VanillaNetwork(source, timesteps)
    if example_input is not None:
        check_input(example_input)
        net.prepare(example_input.shape[1:], example_input)
    return net.eval()


def annotate_model(model: nn.Module, input_shape: Sequence[int] | None = None) -> Annotation:
    """The annotated graph of a QCFS ANN (or of a converted network) for one input shape.

    ``input_shape`` is one sample's shape; a converted network that has run may omit it (its
    current shape is used). The energy model reads these annotations.
    """
    if isinstance(model, ConvertedNetwork):
        return model.annotation(input_shape)
    if input_shape is None:
        raise ValueError(
            "annotating a model needs input_shape, the shape of one sample (e.g. (3, 32, 32))"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return annotate(_trace(model), input_shape)
    finally:
        model.train(was_training)
