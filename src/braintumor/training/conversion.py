"""Turning a checkpoint into the ONNX graphs the serving side runs, and running it in eager
PyTorch (the ``torch`` backend, the reference): the training install's half of
:mod:`braintumor.inference.backends`.

Two graphs per checkpoint:

- the *network*: the grey network pixels (N, S, S) uint8 (normalised inside the graph) ->
  ``features``, the last block's output (N, C, h, w), plus ``box_centre`` (N, h, w) and ``box_sides`` (N, 4, h, w) when the checkpoint
  has a tumour-box head. The classifier (average pooling and one linear layer) and the heat maps
  are computed from ``features`` in NumPy (:mod:`braintumor.inference.cam`), so one graph serves
  the answer, the heat map, the box and the similar-case embedding. In int8 the body's
  convolutions are quantised (per-channel int8 weights, uint8 activations calibrated on scans);
  the first convolution and the box head stay float32.
- the *refiner* (when the checkpoint has a box refiner): input pixels (N, 1, S, S) in [0, 1] and
  boxes (N, 4) -> corrected boxes (N, 4), float32 (its crop is ONNX's RoiAlign).

``braintumor export`` writes them beside the checkpoint (for the shipped model: into the package,
with their SHA-256 in its manifest); a Predictor in the training install converts a checkpoint
that has none on first load and keeps the result in the disk cache.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import Checkpoint, load_checkpoint
from ..inference.graphs import INT8_RECIPE, calibration_inputs, default_calibration, write_sidecar
from ..inference.model_file import ModelFile, sha256_file
from .models import get_arch
from .network_parts import split_network

OPSET = 17


class GreyStem(nn.Module):
    """The first convolution and its batch norm, on the grey pixels (N, S, S) uint8 themselves.

    The network's three input channels are the same grey level normalised with each channel's
    mean and std, so the first convolution on them equals one convolution of the grey image (in
    [0, 1]) with the channels' kernels summed, each divided by its std, minus the convolution of the
    image's extent with the means' share: a constant map, not a constant, because the zero padding
    is zero after normalisation. The batch norm folds into both. A third of the first convolution's
    work, and the normalisation runs inside the graph."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, mean, std, size: int):
        super().__init__()
        import torch.nn.functional as F

        m = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
        w = conv.weight.detach().double()
        scale = (bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)).view(-1, 1, 1, 1)
        # TensorFlow's "same" padding (timm's Conv2dSame: more on the right and bottom) is fixed for
        # a fixed input size, so it is written out; both terms below see the same zeros.
        self.pad = same_padding(conv, size)
        self.conv = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride,
                              0 if self.pad else conv.padding, bias=False)
        self.conv.weight.data = ((w / s).sum(1, keepdim=True) * scale).float()
        ones = F.pad(torch.ones(1, 1, size, size, dtype=torch.float64), self.pad) if self.pad else \
            torch.ones(1, 1, size, size, dtype=torch.float64)
        extent = F.conv2d(ones, (w * m / s).sum(1, keepdim=True), stride=conv.stride,
                          padding=0 if self.pad else conv.padding)
        shift = bn.bias.detach().double() - bn.running_mean.double() * scale.view(-1)
        self.register_buffer("offset", (shift.view(1, -1, 1, 1) - extent * scale.view(1, -1, 1, 1)).float())
        # a batch norm that carries its activation (timm's BatchNormAct2d: ReLU6 in EfficientNet-Lite)
        act = getattr(bn, "act", None)
        self.act = act if isinstance(act, nn.Module) else nn.Identity()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        x = pixels.unsqueeze(1).float() / 255.0
        if self.pad:
            x = F.pad(x, self.pad)
        return self.act(self.conv(x) + self.offset)


def same_padding(conv: nn.Conv2d, size: int) -> tuple[int, int, int, int] | None:
    """(left, right, top, bottom) zeros that TensorFlow's "same" padding adds before ``conv`` on a
    ``size`` x ``size`` input, where ``conv`` pads that way (timm's ``Conv2dSame``); else None."""
    if type(conv).__name__ != "Conv2dSame":
        return None
    pads = []
    for k, st, d in zip(conv.kernel_size, conv.stride, conv.dilation):
        total = max((-(-size // st) - 1) * st + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return (left, right, top, bottom)


def _grey_input(body: nn.Module, prep) -> None:
    """Put a :class:`GreyStem` in place of the body's first convolution and batch norm."""
    seq = body
    while isinstance(seq[0], nn.Sequential):
        seq = seq[0]
    conv, bn = seq[0], seq[1]
    if not (isinstance(conv, nn.Conv2d) and conv.in_channels == 3 and conv.groups == 1 and conv.bias is None
            and isinstance(bn, nn.BatchNorm2d)):
        raise ValueError("the network does not begin with a convolution of three channels and a batch norm")
    seq[0] = GreyStem(conv, bn, prep.mean, prep.std, prep.img_size)
    seq[1] = nn.Identity()


class NetworkGraph(nn.Module):
    """What the network graph computes: the body on the grey pixels (N, S, S) uint8 (normalised
    inside, :class:`GreyStem`), and the box head on its output when there is one."""

    def __init__(self, model: nn.Module, arch: str, prep):
        super().__init__()
        self.body, _ = split_network(model, arch)
        _grey_input(self.body, prep)
        self.box_head = getattr(model, "box_head", None)

    def forward(self, pixels: torch.Tensor):
        features = self.body(pixels)
        if self.box_head is None:
            return features
        centre, sides = self.box_head(features)
        return features, centre, sides


def output_names(ck: ModelFile) -> list[str]:
    return ["features", "box_centre", "box_sides"] if ck.has_box_head else ["features"]


def _model(ck: ModelFile) -> tuple[Checkpoint, nn.Module]:
    full = ck if isinstance(ck, Checkpoint) else load_checkpoint(ck.path)
    model = full.build()
    for p in model.parameters():
        p.requires_grad_(False)
    return full, model


def _export(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str]) -> bytes:
    """``module`` (in eval mode) as an ONNX graph with a dynamic batch, in memory. Batch norms stay
    nodes (ONNX Runtime folds them into the convolutions when it loads the graph), so that the
    convolutions keep the checkpoint's own weights (see :func:`half_storage`)."""
    buf = io.BytesIO()
    axes = {name: {0: "n"} for name in inputs + outputs}
    with warnings.catch_warnings():  # the TorchScript-based exporter announces its deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False, training=torch.onnx.TrainingMode.PRESERVE,
                          do_constant_folding=False)
    return buf.getvalue()


def export_network(ck: ModelFile) -> bytes:
    """The network graph in float32 (dynamic batch), in memory."""
    full, model = _model(ck)
    size = full.preprocessing.img_size
    graph = NetworkGraph(model, full.arch, full.preprocessing).eval()
    return _export(graph, (torch.zeros(1, size, size, dtype=torch.uint8),), ["pixels"], output_names(full))


def half_storage(model_bytes: bytes, min_bytes: int = 4096) -> bytes:
    """The same float32 graph with every weight that float16 holds exactly stored as float16 and
    cast back when ONNX Runtime loads it (a constant it folds once): the same numbers in about half
    the bytes, since a checkpoint saved in half precision holds float16 values."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(model_bytes)
    casts = []
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32 or a.nbytes < min_bytes:
            continue
        h = a.astype(np.float16)
        if not np.array_equal(h.astype(np.float32), a):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(h, f"{name}_float16"))
        casts.append(helper.make_node("Cast", [f"{name}_float16"], [name], to=onnx.TensorProto.FLOAT,
                                      name=f"{name}_to_float32"))
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


class _RefinerGraph(nn.Module):
    def __init__(self, refiner: nn.Module):
        super().__init__()
        self.refiner = refiner

    def forward(self, pixels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.refiner(pixels, boxes)


def export_refiner(ck: ModelFile) -> bytes:
    """The box refiner as a float32 graph: ``pixels`` (N, 1, S, S) in [0, 1], ``boxes`` (N, 4)."""
    full, model = _model(ck)
    if not hasattr(model, "box_refiner"):
        raise ValueError(f"{full.path}: the checkpoint has no box refiner")
    size = full.preprocessing.img_size
    args = (torch.zeros(1, 1, size, size), torch.tensor([[0.4, 0.4, 0.6, 0.6]]))
    return _export(_RefinerGraph(model.box_refiner).eval(), args, ["pixels", "boxes"], ["refined"])


def quantize_network(model_fp32: bytes, calibration: np.ndarray, float_blocks: Sequence[int] = ()) -> bytes:
    """Static int8 quantisation of the network graph (QDQ, per-channel int8 weights, uint8
    activations whose ranges are calibrated on ``calibration``, (N, S, S) uint8 network pixels).
    The first convolution (with the constant map it adds, :class:`GreyStem`) stays float32
    (quantising the image itself cost 1 label in 849 on the validation split), and so does the box
    head (its boxes stay those of float32). (The max pooling after it stays float32 too: ONNX
    Runtime's uint8 pooling, the same numbers, measured slower.) So do the body's modules
    ``float_blocks`` (the architecture's ``int8_float``: indices into the body)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"pixels": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="braintumor-int8-") as tmp:
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(model_fp32)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        nodes = onnx.load(str(pre)).graph.node
        first_conv = next(n for n in nodes if n.op_type == "Conv")
        stem = [n.name for n in nodes if n is first_conv or (n.op_type == "Add" and first_conv.output[0] in n.input)]
        blocks = tuple(f"/body/body.{i}/" for i in float_blocks)
        keep = stem + [n.name for n in nodes if "box_head" in n.name or n.name.startswith(blocks)] \
            + pad_arithmetic(nodes)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep)
        return out.read_bytes()


def pad_arithmetic(nodes) -> list[str]:
    """The nodes that compute how much a Pad adds (TensorFlow "same" padding worked out from the
    input's shape, as timm's Conv2dSame does: Shape, Cast, Div, Ceil, Mul, ...). They must stay
    float: quantised, their rounding changes the amounts and with them the output's size."""
    producer = {out: n for n in nodes for out in n.output}
    found: dict[str, None] = {}
    stack = [n.input[1] for n in nodes if n.op_type == "Pad" and len(n.input) > 1]
    while stack:
        n = producer.get(stack.pop())
        if n is None or n.name in found:
            continue
        found[n.name] = None
        if n.op_type != "Shape":  # the shape is read from the data path, which is not arithmetic
            stack.extend(n.input)
    return list(found)


class _EagerNetwork(nn.Module):
    """The body as trained (three normalised channels), and the box head: the reference."""

    def __init__(self, model: nn.Module, arch: str):
        super().__init__()
        self.body, _ = split_network(model, arch)
        self.box_head = getattr(model, "box_head", None)

    def forward(self, x: torch.Tensor):
        features = self.body(x)
        if self.box_head is None:
            return features
        return (features, *self.box_head(features))


class TorchNetwork:
    """The network in eager PyTorch (float32), from the network pixels (N, S, S) uint8 as the graph
    takes them, returning what the graph returns, as NumPy. On a GPU (``device``) the network runs
    there and its outputs come back to the CPU."""

    name = "torch"

    def __init__(self, ck: ModelFile, device: str = "cpu"):
        from .engine import pick_device

        full, model = _model(ck)
        self.device = pick_device(device)  # auto: a GPU when there is one
        self.module = _EagerNetwork(model, full.arch).eval().to(self.device)
        self.prep = full.preprocessing
        self.outputs = output_names(full)

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(self.prep.normalize(np.asarray(pixels, dtype=np.uint8)))
        with torch.inference_mode():
            out = self.module(x.to(self.device))
        out = out if isinstance(out, tuple) else (out,)
        return {k: v.float().cpu().numpy() for k, v in zip(self.outputs, out)}


class TorchRefiner:
    """The box refiner in eager PyTorch: (N, S, S) uint8 pixels and (N, 4) boxes -> (N, 4)."""

    def __init__(self, ck: ModelFile):
        _, model = _model(ck)
        self.refiner = model.box_refiner.eval()

    def __call__(self, pixels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            px = torch.from_numpy(np.ascontiguousarray(pixels))
            return self.refiner(px, torch.from_numpy(np.asarray(boxes, dtype=np.float32))).numpy()


def write_graphs(ck: ModelFile, calibration: np.ndarray) -> dict:
    """Write the checkpoint's graphs (the int8 and float32 networks, the refiner if any) beside it
    and return what the manifest or sidecar records: ``weights`` (the weights' digest),
    ``int8_recipe`` and ``graphs`` ({kind: {"file", "sha256", "bytes"}})."""
    folder = ck.path.parent
    stem = ck.path.stem
    fp32 = export_network(ck)
    made = {"int8": quantize_network(fp32, calibration, get_arch(ck.arch).int8_float), "onnx": half_storage(fp32)}
    if ck.has_box_refiner:
        made["refiner"] = export_refiner(ck)
    graphs = {}
    for kind, data in made.items():
        path = folder / f"{stem}.{'float32' if kind == 'onnx' else kind}.onnx"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        graphs[kind] = {"file": path.name, "sha256": sha256_file(path), "bytes": len(data)}
    return {"weights": ck.weights_digest(), "int8_recipe": INT8_RECIPE, "graphs": graphs}


def export(path: str | Path | None = None, calibration: Sequence | None = None) -> dict:
    """``braintumor export``: the graphs of a checkpoint (the shipped one when ``path`` is None,
    its manifest updated), with a sidecar ``<name>.onnx.json`` beside a user's checkpoint."""
    from ..inference import shipped

    ck = shipped.load(path)
    images = list(calibration) if calibration is not None else default_calibration()
    if not images:
        raise ValueError("int8 needs calibration scans: none ship with this installation; "
                         "set $BRAINTUMOR_CALIBRATION to a folder of scans")
    record = write_graphs(ck, calibration_inputs(ck.preprocessing, images))
    if shipped.is_shipped(ck):
        shipped.record_graphs(record)
        record["manifest"] = str(shipped.weights_dir() / shipped.MANIFEST)
    else:
        record["sidecar"] = str(write_sidecar(ck, record))
    return record

