"""PatchConv2d computes what nn.Conv2d computes: outputs and gradients, for every shape the default model uses."""

import pytest
import torch
from torch import nn

from torch_rl.patch_conv import PatchConv2d

# (in channels, out channels, kernel, stride, bias, input NCHW shape): the starter net's three convs on the 7x7 view,
# its first conv on a full 5x5 grid, the RGB tile conv, and odd shapes (non-square kernel and image, stride 2)
CASES = [
    (3, 16, (2, 2), 1, True, (5, 3, 7, 7)),
    (16, 32, (2, 2), 1, True, (5, 16, 3, 3)),
    (32, 64, (2, 2), 1, True, (5, 32, 2, 2)),
    (20, 16, (2, 2), 1, True, (4, 20, 5, 5)),
    (3, 16, (8, 8), 8, True, (2, 3, 56, 56)),
    (4, 6, (3, 2), 2, False, (3, 4, 9, 8)),
]


def twin_convs(in_channels, out_channels, kernel, stride, bias, **kwargs):
    torch.manual_seed(0)
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, bias=bias, **kwargs)
    patch = PatchConv2d(in_channels, out_channels, kernel, stride=stride, bias=bias, **kwargs)
    patch.load_state_dict(conv.state_dict())  # the same parameters, by the same names
    return conv, patch


@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc-memory", "nchw-memory"])
@pytest.mark.parametrize("case", CASES, ids=[str(case[-1]) for case in CASES])
def test_outputs_and_gradients_are_nn_conv2ds(case, channels_last):
    *layer, shape = case
    conv, patch = twin_convs(*layer)
    torch.manual_seed(1)
    x = torch.randn(shape)
    if channels_last:  # the models' inputs: NHWC observations seen as NCHW
        x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    x_conv, x_patch = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_conv, out_patch = conv(x_conv), patch(x_patch)
    torch.testing.assert_close(out_patch, out_conv)
    weights = torch.randn(out_conv.shape)  # a loss that weighs every output differently
    (out_conv * weights).sum().backward()
    (out_patch * weights).sum().backward()
    torch.testing.assert_close(x_patch.grad, x_conv.grad)
    torch.testing.assert_close(patch.weight.grad, conv.weight.grad)
    if conv.bias is not None:
        torch.testing.assert_close(patch.bias.grad, conv.bias.grad)


@pytest.mark.parametrize("case", CASES, ids=[str(case[-1]) for case in CASES])
def test_the_compiled_paths_slices_are_the_gathered_patches(case):
    """Under torch.compile the patches are shifted slices (see PatchConv2d._sliced_patches), else a gather."""
    *layer, shape = case
    _, patch = twin_convs(*layer)
    x = torch.randn(shape)
    indices, nhwc, out_h, out_w = patch._plan(*shape[1:], nhwc=False)
    gathered = x.reshape(shape[0], -1).index_select(1, indices).view(shape[0] * out_h * out_w, -1)
    assert torch.equal(patch._sliced_patches(x, out_h, out_w), gathered)


def test_compiled_it_is_still_nn_conv2d():
    conv, patch = twin_convs(16, 32, (2, 2), 1, True)
    x = torch.randn(4, 3, 3, 16).permute(0, 3, 1, 2)
    x_conv, x_patch = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = torch.compile(patch, dynamic=False)(x_patch)
    torch.testing.assert_close(out, conv(x_conv))
    out.square().sum().backward()
    conv(x_conv).square().sum().backward()
    torch.testing.assert_close(x_patch.grad, x_conv.grad)
    torch.testing.assert_close(patch.weight.grad, conv.weight.grad)


def test_indices_made_while_acting_serve_the_update():
    """The first call may come under inference_mode (acting); a later call with autograd reuses its indices, also
    where the input needs a gradient (a second conv), so that the backward saves them."""
    conv, patch = twin_convs(16, 32, (2, 2), 1, True)
    x = torch.randn(4, 3, 3, 16).permute(0, 3, 1, 2)
    with torch.inference_mode():
        torch.testing.assert_close(patch(x), conv(x))
    x_conv, x_patch = x.clone().requires_grad_(), x.clone().requires_grad_()
    patch(x_patch).sum().backward()
    conv(x_conv).sum().backward()
    torch.testing.assert_close(x_patch.grad, x_conv.grad)
    torch.testing.assert_close(patch.weight.grad, conv.weight.grad)


@pytest.mark.parametrize("kwargs", [{"padding": 1}, {"dilation": 2}, {"groups": 2}], ids=str)
def test_layers_the_patches_do_not_cover_are_nn_conv2ds(kwargs):
    conv, patch = twin_convs(4, 8, (2, 2), 1, True, **kwargs)
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(patch(x), conv(x))


def test_an_empty_batch_and_a_too_small_image_behave_as_nn_conv2d():
    conv, patch = twin_convs(3, 16, (2, 2), 1, True)
    assert patch(torch.zeros(0, 3, 7, 7)).shape == conv(torch.zeros(0, 3, 7, 7)).shape == (0, 16, 6, 6)
    with pytest.raises(RuntimeError, match="[Kk]ernel size"):
        patch(torch.zeros(1, 3, 1, 1))


def test_the_default_model_uses_it():
    import gymnasium as gym

    from model import ACModel

    model = ACModel({"image": (7, 7, 3)}, gym.spaces.Discrete(7))
    assert sum(type(layer) is PatchConv2d for layer in model.image_conv) == 3


def test_one_layer_serves_inputs_of_either_memory_layout():
    """Its patch indices are made per layout: NHWC memory, then NCHW memory of the same shape."""
    conv, patch = twin_convs(3, 16, (2, 2), 1, True)
    x = torch.randn(4, 7, 7, 3)
    for image in (x.permute(0, 3, 1, 2), x.permute(0, 3, 1, 2).contiguous()):
        torch.testing.assert_close(patch(image), conv(image))
