"""``ganforge describe``: every layer with its output shape, parameter counts and FLOPs."""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from ganforge.config.presets import describe_channels
from ganforge.config.schema import ModelConfig
from ganforge.models import Architecture, architecture, build_models, count_parameters, shapes_through
from ganforge.models.layers import LayerSpec, Shape


@dataclass(frozen=True)
class LayerRow:
    layer: str  # the PyTorch constructor, e.g. "Conv2d(1, 32, 4, 2, 1)"
    extras: str  # what follows it: "BatchNorm, ReLU"
    output_shape: Shape  # from W_out = floor((W_in - m + 2p) / s) + 1 (or its transpose)
    parameters: int
    flops: int  # multiply-adds count 2, one sample, convolutions and matmuls only


@dataclass(frozen=True)
class NetworkDescription:
    name: str
    input_shape: Shape
    rows: list[LayerRow]

    @property
    def parameters(self) -> int:
        return sum(row.parameters for row in self.rows)

    @property
    def flops(self) -> int:
        return sum(row.flops for row in self.rows)


def describe(config: ModelConfig) -> tuple[NetworkDescription, NetworkDescription]:
    """The generator's and discriminator's layer tables, measured on a batch of one.

    Channels left unset are those of :func:`~ganforge.config.presets.describe_channels`: 1 at 28x28 (the
    lectures' MNIST tables), else 3.
    """
    if config.model != "toy" and config.channels is None:
        config = dataclasses.replace(config, channels=describe_channels(config.image_size))
    arch: Architecture = architecture(config)
    generator, discriminator = build_models(config)
    z_dim = generator.z_dim
    return (
        _describe_network("generator", generator, arch.generator, arch.generator_input, torch.zeros(1, z_dim)),
        _describe_network("discriminator", discriminator, arch.discriminator, arch.discriminator_input,
                          torch.zeros(1, *arch.sample_shape)),
    )


def _describe_network(name: str, network: nn.Module, table: list[LayerSpec], input_shape: Shape,
                      example: torch.Tensor) -> NetworkDescription:
    network.eval()
    flops = [0] * len(network.layers)
    counted = [(index, module) for index, row in enumerate(network.layers)
               for module in row.modules() if isinstance(module, _COUNTED)]
    classifier = getattr(network, "component_classifier", None)
    if classifier is not None:  # InfoGAN's Q: a second linear head beside D's last row, on the same features
        counted.append((len(network.layers) - 1, classifier.linear))
    hooks = [module.register_forward_hook(functools.partial(_count_flops, flops, index)) for index, module in counted]
    try:
        with torch.no_grad():
            network(example, components=True) if classifier is not None else network(example)
    finally:
        for hook in hooks:
            hook.remove()
    rows = []
    for index, (spec, shape) in enumerate(zip(table, shapes_through(table, input_shape))):
        extras = ", ".join(
            part for part in ("BatchNorm" if spec.batch_norm else "", _ACTIVATION_NAMES.get(spec.activation, "")) if part
        )
        parameters = count_parameters(network.layers[index])
        component_bias = getattr(network, "component_bias", None) if index == 0 else None
        if component_bias is not None:  # the toy's latent components: one learned bias of this row per component
            chosen = f"+ bias of 1 of {component_bias.components} components"
            extras = f"{chosen}, {extras}" if extras else chosen
            parameters += count_parameters(component_bias)
        if classifier is not None and index == len(table) - 1:  # the head's weights and FLOPs join D's last row
            head = f"+ component head Linear({classifier.linear.in_features}, {classifier.linear.out_features})"
            extras = f"{extras}, {head}" if extras else head
            parameters += count_parameters(classifier)
        rows.append(LayerRow(spec.describe(), extras, shape, parameters, flops[index]))
    return NetworkDescription(name, input_shape, rows)


# The layers whose forward is a matrix product or a convolution. Their FLOPs are counted from the shapes a
# forward hook sees, with torch.utils.flop_counter's formulas (tests/models checks the two agree): the same
# numbers as its FlopCounterMode, whose first use imports torch._dynamo, a second of `ganforge describe`'s start.
_COUNTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def _count_flops(flops: list[int], index: int, module: nn.Module, inputs: tuple[torch.Tensor, ...],
                 output: torch.Tensor) -> None:
    """Add one Linear's or convolution's forward to row ``index``: a multiply-add counts 2, bias adds none."""
    if isinstance(module, nn.Linear):  # (N, in) @ (in, out)
        flops[index] += 2 * inputs[0].numel() * module.out_features
        return
    # weight: (C_out, C_in / groups, k, k), transposed (C_in, C_out / groups, k, k); a convolution computes
    # each output point from C_in / groups * k * k inputs, a transposed one spreads each input point likewise
    per_point = 2 * math.prod(module.weight.shape[1:])
    flops[index] += per_point * (inputs[0].numel() if isinstance(module, nn.ConvTranspose2d) else output.numel())


_ACTIVATION_NAMES = {"relu": "ReLU", "lrelu": "LeakyReLU(0.2)", "tanh": "Tanh"}
