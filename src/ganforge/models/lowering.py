"""Faster CPU kernels for the same layers: the function and the parameters stay exactly those of the table.

DCGAN's first transposed convolution at 64x64 and above maps 4x4 maps of 1024+
channels to 8x8 through a 32 MiB weight. PyTorch's CPU kernels (oneDNN, and
the im2col path for contiguous tensors) run it at about half the speed of a
matrix product of the same size, while a transposed convolution is exactly
one matrix product followed by col2im: every input pixel times the weight
gives its k x k output patch, and the overlapping patches are summed into
the output map. Written that way, the batch's pixels form one large
GEMM that reaches the machine's matmul speed (BENCHMARKS.md has the numbers).
Layers with larger maps or smaller weights are faster in the stock kernels
and keep them; CUDA keeps cuDNN.

Two more layers of every DCGAN are matrix products in disguise, and the stock
kernels run them 4 to 30 times slower than one (in fp32 and far worse in bf16,
where oneDNN handles a single output channel poorly): D's last convolution,
whose kernel covers its whole 4x4 input (one output pixel, a linear layer on
the flattened map), and G's first transposed convolution, whose input is the
1x1 latent (each sample's k x k output is its latent times the weight). Both
are computed as one matmul in any precision, autocast included.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Measured on the CI machine (BENCHMARKS.md): the GEMM form wins for a 32 MiB weight on 4x4 inputs
# (1024 -> 512 channels, fwd+bwd 0.65x the stock time) and loses for 8 MiB (512 -> 256) or 8x8 inputs.
GEMM_MIN_WEIGHT_ELEMENTS = 1 << 22  # 16 MiB of fp32
GEMM_MAX_INPUT_PIXELS = 16  # 4x4 maps


class _PatchesConvTranspose(torch.autograd.Function):
    """y = col2im(pixels @ W) + b in channels-last order: each input pixel's k x k x C_out patch comes out of
    one GEMM, and the patches are summed into the output map by k*k strided adds (no unfold buffers)."""

    @staticmethod
    def forward(ctx: Any, input: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int],
                padding: tuple[int, int]) -> Tensor:
        batch, in_channels, height, width = input.shape
        out_channels, kh, kw = weight.shape[1:]
        pixels = input.permute(0, 2, 3, 1).reshape(batch * height * width, in_channels)
        patches = (pixels @ _weight_matrix(weight)).view(batch, height, width, kh, kw, out_channels)
        full = torch.zeros(batch, *_full_size(height, width, kh, kw, stride), out_channels,
                           dtype=patches.dtype, device=patches.device)
        for i in range(kh):
            for j in range(kw):
                full[:, _taps(i, height, stride[0]), _taps(j, width, stride[1])] += patches[:, :, :, i, j]
        out = _crop(full, padding)
        if bias is not None:
            out = out + bias
        ctx.save_for_backward(input, weight)
        ctx.has_bias, ctx.stride, ctx.padding = bias is not None, stride, padding
        return out.permute(0, 3, 1, 2)  # (B, C_out, H_out, W_out) with channels-last strides

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        input, weight = ctx.saved_tensors
        batch, in_channels, height, width = input.shape
        out_channels, kh, kw = weight.shape[1:]
        stride, padding = ctx.stride, ctx.padding
        grad = grad_output.permute(0, 2, 3, 1)  # (B, H_out, W_out, C_out)
        full = grad.new_zeros(batch, *_full_size(height, width, kh, kw, stride), out_channels)
        _crop(full, padding).copy_(grad)
        grad_patches = torch.stack([full[:, _taps(i, height, stride[0]), _taps(j, width, stride[1])]
                                    for i in range(kh) for j in range(kw)], dim=3)
        grad_patches = grad_patches.view(batch * height * width, kh * kw * out_channels)
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = (grad_patches @ _weight_matrix(weight).T).view(batch, height, width, in_channels)
            grad_input = grad_input.permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            pixels = input.permute(0, 2, 3, 1).reshape(batch * height * width, in_channels)
            grad_weight = (pixels.T @ grad_patches).view(in_channels, kh, kw, out_channels).permute(0, 3, 1, 2)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=(0, 1, 2))
        return grad_input, grad_weight, grad_bias, None, None


def _weight_matrix(weight: Tensor) -> Tensor:
    """(C_in, C_out, k, k) -> (C_in, k*k*C_out): a view of a channels_last weight, a copy of another."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def _full_size(height: int, width: int, kh: int, kw: int, stride: tuple[int, int]) -> tuple[int, int]:
    """The output map before the padding is cropped: every patch lands whole."""
    return (height - 1) * stride[0] + kh, (width - 1) * stride[1] + kw


def _taps(offset: int, size: int, stride: int) -> slice:
    """Where kernel row (or column) ``offset`` of every input pixel lands in the uncropped output."""
    return slice(offset, offset + (size - 1) * stride + 1, stride)


def _crop(full: Tensor, padding: tuple[int, int]) -> Tensor:
    """The transposed convolution's output inside the uncropped (B, H, W, C) map: ``padding`` off each side."""
    return full[:, padding[0]:full.shape[1] - padding[0], padding[1]:full.shape[2] - padding[1]]


class GemmConvTranspose2d(nn.ConvTranspose2d):
    """An ``nn.ConvTranspose2d`` (same parameters, same state-dict keys, same outputs up to float rounding)
    computed as one batched GEMM when its input maps are small; in fp32 (autocast keeps the stock kernel)."""

    output_memory_format = torch.channels_last  # the layout the layers after it expect

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        height, width = input.shape[2:]
        if (height * width > GEMM_MAX_INPUT_PIXELS or output_size is not None or input.dtype != self.weight.dtype
                or torch.is_autocast_enabled(input.device.type)):
            return super().forward(input, output_size)
        out = _PatchesConvTranspose.apply(input, self.weight, self.bias, self.stride, self.padding)
        return out.contiguous(memory_format=self.output_memory_format)


class MatmulConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose kernel covers its whole input (one output pixel) computed as the linear layer it
    is; same parameters and outputs up to float rounding; other input sizes take the stock kernel."""

    def forward(self, input: Tensor) -> Tensor:
        if tuple(input.shape[2:]) != self.kernel_size:
            return super().forward(input)
        batch = input.shape[0]
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)  # (C_out, k*k*C_in)
        out = F.linear(input.permute(0, 2, 3, 1).reshape(batch, -1), weight, self.bias)
        return out.view(batch, self.out_channels, 1, 1)


class MatmulConvTranspose2d(nn.ConvTranspose2d):
    """An ``nn.ConvTranspose2d`` on 1x1 maps (a latent) computed as one matmul: each sample's k x k x C_out
    output is its input row times the weight; same parameters and outputs up to float rounding."""

    output_memory_format = torch.channels_last  # the layout the layers after it expect

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        if tuple(input.shape[2:]) != (1, 1) or output_size is not None:
            return super().forward(input, output_size)
        batch = input.shape[0]
        height, width = self.kernel_size
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.in_channels, -1)  # (C_in, k*k*C_out)
        out = (input.reshape(batch, -1) @ weight).view(batch, height, width, self.out_channels)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)  # under autocast the stock kernel's output is bf16 too
        return out.permute(0, 3, 1, 2).contiguous(memory_format=self.output_memory_format)


def is_matmul_in_disguise(layer: nn.Module) -> bool:
    """Whether a layer is one :class:`MatmulConv2d` or :class:`MatmulConvTranspose2d` computes: no padding,
    groups or dilation, and (for a convolution) the whole input in its kernel, which only its input tells;
    the layer checks that at each call."""
    plain = getattr(layer, "groups", None) == 1 and getattr(layer, "dilation", None) == (1, 1) \
        and getattr(layer, "padding", None) == (0, 0)
    if type(layer) is nn.Conv2d:
        return plain and layer.padding_mode == "zeros"
    return type(layer) is nn.ConvTranspose2d and plain and layer.output_padding == (0, 0)


def gemm_pays_off(layer: nn.Module) -> bool:
    """Whether a transposed convolution is one the GEMM form runs faster (large weight, plain options)."""
    return (type(layer) is nn.ConvTranspose2d and layer.groups == 1 and layer.dilation == (1, 1)
            and layer.output_padding == (0, 0) and layer.weight.numel() >= GEMM_MIN_WEIGHT_ELEMENTS)


def use_gemm_form(layer: nn.ConvTranspose2d, activations: torch.memory_format) -> None:
    """Switch one transposed convolution to the GEMM form in place, its output kept in ``activations`` layout.
    Only its class changes (as ``torch.nn.utils.parametrize`` does): identity, parameters, buffers and hooks
    stay, so optimizers, checkpoints and EMA copies are unaffected."""
    layer.__class__ = GemmConvTranspose2d
    layer.output_memory_format = activations
    layer.to(memory_format=torch.channels_last)  # the GEMM reads a channels_last weight as a matrix


def tune_for_cpu(network: nn.Module, activations: torch.memory_format) -> None:
    """Switch, in place, ``network``'s large transposed convolutions (those :func:`gemm_pays_off` picks) to the
    GEMM form, and its matrix products in disguise (:func:`is_matmul_in_disguise`) to a matmul. Only the layers'
    classes change: identity, parameters, buffers and hooks stay."""
    for layer in network.modules():
        if gemm_pays_off(layer):
            use_gemm_form(layer, activations)
        elif is_matmul_in_disguise(layer):
            layer.__class__ = MatmulConv2d if isinstance(layer, nn.Conv2d) else MatmulConvTranspose2d
            if isinstance(layer, MatmulConvTranspose2d):
                layer.output_memory_format = activations
