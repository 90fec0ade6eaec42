"""Layer tables: every model is a list of :class:`LayerSpec` rows turned into modules.

One table drives both the network and ``ganforge describe``, so the printed
architecture is the built one. Output sizes follow the lecture formula
``W_out = floor((W_in - m + 2p) / s) + 1`` for convolutions and its transpose
``W_out = (W_in - 1) s - 2p + m`` for transposed convolutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganforge.models.components import ComponentBias, ComponentClassifier

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerSpec:
    """One row: a linear/conv layer, then optional BatchNorm, then an activation."""

    kind: str  # linear | project (linear + reshape to 4x4 maps) | conv | convT
    in_features: int  # input channels (conv, convT) or units (linear, project)
    out_features: int  # output channels (conv, convT, project) or units (linear)
    kernel: int = 0  # m, for conv/convT
    stride: int = 1  # s
    padding: int = 0  # p
    batch_norm: bool = False
    activation: str | None = None  # relu | lrelu | tanh | None (a raw logit)

    def output_shape(self, input_shape: Shape) -> Shape:
        """The shape one sample has after this row (without the batch axis)."""
        if self.kind == "linear":
            return (self.out_features,)
        if self.kind == "project":
            return (self.out_features, PROJECT_SIDE, PROJECT_SIDE)
        side = input_shape[-1]
        if self.kind == "conv":
            side = (side - self.kernel + 2 * self.padding) // self.stride + 1
        else:
            side = (side - 1) * self.stride - 2 * self.padding + self.kernel
        return (self.out_features, side, side)

    def describe(self) -> str:
        """The layer as its PyTorch constructor would read."""
        if self.kind == "linear":
            return f"Linear({self.in_features}, {self.out_features})"
        if self.kind == "project":
            units = self.out_features * PROJECT_SIDE * PROJECT_SIDE
            return f"Linear({self.in_features}, {units}) -> reshape {self.out_features}x{PROJECT_SIDE}x{PROJECT_SIDE}"
        name = "Conv2d" if self.kind == "conv" else "ConvTranspose2d"
        return f"{name}({self.in_features}, {self.out_features}, {self.kernel}, {self.stride}, {self.padding})"


PROJECT_SIDE = 4  # DCGAN's "project and reshape" starts from 4x4 feature maps
LEAKY_SLOPE = 0.2


class Project(nn.Module):
    """DCGAN's first generator layer: multiply z by W (z_dim x 4*4*C) and reshape to C x 4 x 4."""

    def __init__(self, in_features: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.linear = nn.Linear(in_features, channels * PROJECT_SIDE * PROJECT_SIDE)

    def forward(self, z: Tensor) -> Tensor:  # (B, z_dim) -> (B, C, 4, 4)
        return self.linear(z).view(-1, self.channels, PROJECT_SIDE, PROJECT_SIDE)


def build_layer(spec: LayerSpec, norm: str = "batch") -> nn.Sequential:
    """The modules of one row, in order: layer, normalization (where the row has one), activation.

    ``norm`` picks what a normalized row uses: ``batch`` (the seed tables), ``layer`` (per sample over
    all features, as a gradient-penalty critic needs) or ``none``.
    """
    if spec.kind == "linear":
        layer: nn.Module = nn.Linear(spec.in_features, spec.out_features)
    elif spec.kind == "project":
        layer = Project(spec.in_features, spec.out_features)
    elif spec.kind == "conv":
        layer = nn.Conv2d(spec.in_features, spec.out_features, spec.kernel, spec.stride, spec.padding)
    elif spec.kind == "convT":
        layer = nn.ConvTranspose2d(spec.in_features, spec.out_features, spec.kernel, spec.stride, spec.padding)
    else:
        raise ValueError(f"unknown layer kind {spec.kind!r}")
    modules = [layer]
    if spec.batch_norm and norm == "batch":
        modules.append(nn.BatchNorm1d(spec.out_features) if spec.kind == "linear" else nn.BatchNorm2d(spec.out_features))
    elif spec.batch_norm and norm == "layer":
        modules.append(nn.LayerNorm(spec.out_features) if spec.kind == "linear" else nn.GroupNorm(1, spec.out_features))
    elif spec.batch_norm and norm != "none":
        raise ValueError(f"unknown normalization {norm!r}")
    if spec.activation == "relu":
        modules.append(nn.ReLU())
    elif spec.activation == "lrelu":
        modules.append(nn.LeakyReLU(LEAKY_SLOPE))
    elif spec.activation == "tanh":
        modules.append(nn.Tanh())
    elif spec.activation is not None:
        raise ValueError(f"unknown activation {spec.activation!r}")
    return nn.Sequential(*modules)


def shapes_through(table: list[LayerSpec], input_shape: Shape) -> list[Shape]:
    """The output shape of every row, computed by the formulas (not by running the network)."""
    shapes = []
    shape = input_shape
    for spec in table:
        shape = spec.output_shape(shape)
        shapes.append(shape)
    return shapes


class Generator(nn.Module):
    """G_phi: noise z in R^z_dim -> a sample of ``sample_shape`` (images in [-1, 1] or 2-D points).

    Class-conditional (``num_classes``): a learned embedding of the label, of z's size, is
    concatenated to z, so the table's first layer takes 2 * z_dim inputs.

    With ``components`` K > 1 (:mod:`ganforge.models.components`), z's last coordinate picks one of K learned
    biases of the first layer, and the table's first layer takes the other z_dim - 1 coordinates.
    """

    def __init__(self, table: list[LayerSpec], z_dim: int, input_shape: Shape, sample_shape: Shape,
                 num_classes: int | None = None, components: int = 1) -> None:
        super().__init__()
        self.table = table
        self.z_dim = z_dim
        self.input_shape = input_shape  # how the input enters the first layer, e.g. (50, 1, 1) for a transposed conv
        self.sample_shape = sample_shape
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes, z_dim) if num_classes else None
        self.layers = nn.Sequential(*(build_layer(spec) for spec in table))
        self.component_bias = ComponentBias(components, table[0].out_features) if components > 1 else None

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:  # (B, z_dim), (B,) -> (B, *sample_shape)
        if self.component_bias is not None:
            first = self.layers[0]  # (linear, [norm], activation): the component's bias joins the linear part
            hidden = first[1:](first[0](z[:, :-1]) + self.component_bias(z[:, -1]))
            return self.layers[1:](hidden).view(z.shape[0], *self.sample_shape)
        if self.embedding is not None:
            if labels is None:
                raise ValueError("a class-conditional generator needs the labels of the samples to make")
            z = torch.cat([z, self.embedding(labels)], dim=1)
        return self.layers(z.view(z.shape[0], *self.input_shape)).view(z.shape[0], *self.sample_shape)


class Discriminator(nn.Module):
    """D_theta: a sample -> one logit (or critic score) per sample; sigmoid(logit) is the probability it is real.

    Class-conditional (``num_classes``): a projection discriminator (Miyato & Koyama 2018). The last
    row is linear in the features h before it, and the label adds <embed(y), h> to its output.

    With ``components`` K > 1 (InfoGAN's Q, :class:`~ganforge.models.components.ComponentClassifier`), a second
    linear head on the same features predicts which of the generator's K latent components made each sample.
    """

    def __init__(self, table: list[LayerSpec], input_shape: Shape, num_classes: int | None = None,
                 norm: str = "batch", components: int = 1, pack: int = 1) -> None:
        super().__init__()
        self.table = table
        self.input_shape = input_shape  # (C*H*W,) for MLPs, (C, H, W) for CNNs
        self.num_classes = num_classes
        self.layers = nn.Sequential(*(build_layer(spec, norm) for spec in table))
        features = math.prod(shapes_through(table[:-1], input_shape)[-1]) if len(table) > 1 else math.prod(input_shape)
        self.projection = nn.Embedding(num_classes, features) if num_classes else None
        self.component_classifier = ComponentClassifier(features, components, pack) if components > 1 else None

    def forward(self, x: Tensor, labels: Tensor | None = None, components: bool = False,
                features: bool = False) -> Tensor | tuple[Tensor, ...]:
        """(B, *sample_shape), (B,) -> (B,) scores. With ``components`` or ``features``, a tuple of the scores and
        what was asked for, in that order: the (B * pack, K) component logits, and D's last hidden features
        (B, F), flattened, that feature matching compares."""
        x = x.reshape(x.shape[0], *self.input_shape)
        if self.projection is None and not components and not features:
            return self.layers(x).view(x.shape[0])
        hidden = self.layers[:-1](x)
        scores = self.layers[-1](hidden).view(x.shape[0])
        flat = hidden.flatten(1)
        if self.projection is not None:
            if labels is None:
                raise ValueError("a projection discriminator needs the labels of the samples it judges")
            scores = scores + (self.projection(labels) * flat).sum(dim=1)
        outputs: tuple[Tensor, ...] = (scores,)
        if components:
            if self.component_classifier is None:
                raise ValueError("this discriminator has no component head: build it with components > 1")
            outputs += (self.component_classifier(flat),)
        if features:
            outputs += (flat,)
        return outputs if len(outputs) > 1 else scores


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al.: conv, linear (and label embedding) weights from N(0, 0.02); BatchNorm scale from N(1, 0.02); biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


@torch.no_grad()
def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def apply_spectral_norm(module: nn.Module) -> None:
    """Spectral normalization (Miyato et al. 2018) of every weight layer and embedding: each weight is divided
    by its largest singular value (one power iteration per training forward), bounding D's Lipschitz constant."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.utils.parametrizations.spectral_norm(layer)
