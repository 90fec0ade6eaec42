"""``ganforge describe``: every layer with its output shape, parameter counts and FLOPs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

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
    """The generator's and discriminator's layer tables, measured on a batch of one."""
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
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(example)
    counts = counter.get_flop_counts()
    prefix = type(network).__name__
    rows = []
    for index, (spec, shape) in enumerate(zip(table, shapes_through(table, input_shape))):
        extras = ", ".join(
            part for part in ("BatchNorm" if spec.batch_norm else "", _ACTIVATION_NAMES.get(spec.activation, "")) if part
        )
        layer_flops = sum(counts.get(f"{prefix}.layers.{index}", {}).values())
        rows.append(LayerRow(spec.describe(), extras, shape, count_parameters(network.layers[index]), int(layer_flops)))
    return NetworkDescription(name, input_shape, rows)


_ACTIVATION_NAMES = {"relu": "ReLU", "lrelu": "LeakyReLU(0.2)", "tanh": "Tanh"}
