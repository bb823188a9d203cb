"""``PatchConv2d``: ``nn.Conv2d`` computed on a CPU as one gather of patches and one matrix product.

MiniGrid's views are tiny (7x7 cells), and at such sizes the CPU's convolution kernels (oneDNN) cost far more in
fixed overhead than in arithmetic (``benchmarks/conv_layers.py``: the starter model's net, a 16-row forward 2.3x
and a 256-row forward and backward 1.5x faster on this project's 2-core CPU). The layer keeps
``nn.Conv2d``'s parameters and names, so saved models load either way, and it falls back to ``nn.Conv2d`` where
the trick does not apply (padding, dilation, groups, another device) and in an ONNX export.

The patches are gathered with ``index_select`` over the flattened image, with indices made once per input layout
(under torch.compile, as shifted slices: see ``_sliced_patches``).
The output is channels-last memory seen as NCHW, so that a following ReLU, max-pool or PatchConv2d reads it in place.
"""

import torch
from torch import nn


class PatchConv2d(nn.Conv2d):
    """A drop-in ``nn.Conv2d`` for small images on a CPU: the same arguments, parameters, ``state_dict`` and results
    (within float rounding), computed as a gather of patches and one matrix product, which at MiniGrid's sizes
    costs a fraction of the CPU's convolution kernels (docs/speed.md). Padding, dilation, groups, another device and
    ONNX export run ``nn.Conv2d`` itself.

    Example: ``nn.Sequential(PatchConv2d(3, 16, (2, 2)), nn.ReLU(), nn.MaxPool2d(2))`` on NCHW images."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # per input layout (C, H, W and strides): (patch indices, NHWC memory, out_h, out_w), or None where
        # nn.Conv2d runs; made once, as a step of 16 envs costs only tens of microseconds
        self._plans: dict[tuple, tuple | None] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_cpu or x.dim() != 4 or x.shape[0] == 0 or torch.jit.is_tracing():  # tracing: ONNX's own Conv
            return super().forward(x)
        key = (x.shape[1:], x.stride()[1:])
        plan = self._plans.get(key, False)
        if plan is False:
            with torch.inference_mode(False):  # made while acting, saved for the backward too
                plan = self._plans[key] = self._plan(*x.shape[1:], x.permute(0, 2, 3, 1).is_contiguous())
        if plan is None:
            return super().forward(x)
        indices, nhwc, out_h, out_w = plan
        batch = x.shape[0]
        if torch.compiler.is_compiling():
            patches = self._sliced_patches(x, out_h, out_w)
        else:
            rows = x.permute(0, 2, 3, 1).reshape(batch, -1) if nhwc else x.reshape(batch, -1)  # x's memory, no copy
            patches = rows.index_select(1, indices).view(batch * out_h * out_w, -1)  # (c, kh, kw) per output cell
        weight = self.weight.view(self.out_channels, -1)
        out = patches @ weight.t() if self.bias is None else torch.addmm(self.bias, patches, weight.t())
        return out.view(batch, out_h, out_w, self.out_channels).permute(0, 3, 1, 2)

    def _sliced_patches(self, x, out_h, out_w):
        """The patches as kh * kw shifted slices: for Inductor, whose code for a gather by ``index_select`` (and
        for its backward) recomputes what precedes it at every index."""
        (kernel_h, kernel_w), (stride_h, stride_w) = self.kernel_size, self.stride
        span_h, span_w = stride_h * (out_h - 1) + 1, stride_w * (out_w - 1) + 1
        slices = [
            x[:, :, i : i + span_h : stride_h, j : j + span_w : stride_w]
            for i in range(kernel_h)
            for j in range(kernel_w)
        ]
        patches = torch.stack(slices, dim=-1)  # (B, C, oh, ow, kh * kw)
        return patches.permute(0, 2, 3, 1, 4).reshape(x.shape[0] * out_h * out_w, -1)

    def _plan(self, channels, height, width, nhwc):
        """(flat positions in x's memory of each output cell's patch in the weight's (c, kh, kw) order, nhwc,
        out_h, out_w), or None where the patches do not apply."""
        (kernel_h, kernel_w), (stride_h, stride_w) = self.kernel_size, self.stride
        plain = self.padding_mode != "zeros" or any(self.padding) or self.groups != 1 or max(self.dilation) != 1
        if plain or height < kernel_h or width < kernel_w:  # (too small: nn.Conv2d's error message)
            return None
        positions = torch.arange(channels * height * width)
        if nhwc:
            grid = positions.view(height, width, channels).permute(2, 0, 1)
        else:
            grid = positions.view(channels, height, width)
        windows = grid.unfold(1, kernel_h, stride_h).unfold(2, kernel_w, stride_w)  # (C, oh, ow, kh, kw)
        indices = windows.permute(1, 2, 0, 3, 4).reshape(-1)
        return indices, nhwc, windows.shape[1], windows.shape[2]
