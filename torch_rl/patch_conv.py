"""``PatchConv2d``: ``nn.Conv2d`` computed on a CPU as one gather of patches and one matrix product.

MiniGrid's views are tiny (7x7 cells), and at such sizes the CPU's convolution kernels (oneDNN) cost far more in
fixed overhead than in arithmetic. Measured on 2 cores, the starter model's net (2x2 convs of 16, 32 and 64 filters,
one max-pool): a 16-row forward 190 -> 60 us, a 256-row forward and backward 2.0 -> 1.1 ms. The layer keeps
``nn.Conv2d``'s parameters and names, so saved models load either way, and it falls back to ``nn.Conv2d`` where
the trick does not apply (padding, dilation, groups, another device) and in an ONNX export.

The patches are gathered with ``index_select`` over the flattened image, with indices made once per input shape.
The output is channels-last memory seen as NCHW, so that a following ReLU, max-pool or PatchConv2d reads it in place.
"""

import torch
from torch import nn


class PatchConv2d(nn.Conv2d):
    """Takes ``nn.Conv2d``'s arguments; its parameters, state_dict and results (within float rounding)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._indices: dict[tuple, torch.Tensor] = {}  # (C, H, W, channels_last) -> patch indices, made once

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = self.padding_mode != "zeros" or any(self.padding) or self.groups != 1 or max(self.dilation) != 1
        (kernel_h, kernel_w), (stride_h, stride_w) = self.kernel_size, self.stride
        exporting = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()  # an ONNX Conv node: runtimes' own
        if plain or exporting or x.device.type != "cpu" or x.dim() != 4 or x.shape[0] == 0:
            return super().forward(x)
        batch, channels, height, width = x.shape
        if height < kernel_h or width < kernel_w:
            return super().forward(x)  # its error message
        out_h, out_w = (height - kernel_h) // stride_h + 1, (width - kernel_w) // stride_w + 1
        patches = self._gather_patches(x).view(batch * out_h * out_w, -1)
        weight = self.weight.view(self.out_channels, -1)
        out = patches @ weight.t() if self.bias is None else torch.addmm(self.bias, patches, weight.t())
        return out.view(batch, out_h, out_w, self.out_channels).permute(0, 3, 1, 2)

    def _gather_patches(self, x):
        """(B, cells * C * kh * kw): each output cell's patch, in the weight's (c, kh, kw) order."""
        batch, channels, height, width = x.shape
        # x's memory as rows: NHWC memory (a permuted view, as the models' inputs are) is read without a copy
        channels_last = x.permute(0, 2, 3, 1).is_contiguous()
        rows = x.permute(0, 2, 3, 1).reshape(batch, -1) if channels_last else x.reshape(batch, -1)
        key = (channels, height, width, channels_last)
        indices = self._indices.get(key)
        if indices is None:
            with torch.inference_mode(False):  # made while acting, used by the backward too
                indices = self._patch_indices(channels, height, width, channels_last).to(x.device)
            self._indices[key] = indices
        return rows.index_select(1, indices)

    def _patch_indices(self, channels, height, width, channels_last):
        """Flat positions in x's memory of each output cell's patch, cell by cell, in the weight's (c, kh, kw)."""
        positions = torch.arange(channels * height * width)
        if channels_last:
            grid = positions.view(height, width, channels).permute(2, 0, 1)
        else:
            grid = positions.view(channels, height, width)
        (kernel_h, kernel_w), (stride_h, stride_w) = self.kernel_size, self.stride
        windows = grid.unfold(1, kernel_h, stride_h).unfold(2, kernel_w, stride_w)  # (C, oh, ow, kh, kw)
        return windows.permute(1, 2, 0, 3, 4).reshape(-1)
