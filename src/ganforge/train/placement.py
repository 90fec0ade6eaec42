"""Where and how the networks run: the device, the memory layout, the CPU kernels, bf16 support.

Training and sampling share :func:`place_network`, so samples match the trainer's previews.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn.utils import parametrize

from ganforge.config.schema import RunConfig
from ganforge.errors import ConfigError
from ganforge.models.lowering import tune_for_cpu


def cpu_bf16_support() -> bool | None:
    """Whether this CPU multiplies bf16 in hardware (Linux: AVX-512 BF16 or AMX flags); None where unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware; True where unknown (so nothing warns without cause)."""
    return cpu_bf16_support() is not False


def automatic_precision(device: torch.device) -> str:
    """What ``--precision auto`` trains in: bf16 autocast where the device is known to compute bf16 natively
    (a CPU with AVX-512 BF16 or AMX, a CUDA GPU with bf16; on this project's Intel CPU the stacked-digits DCGAN
    step took 0.55-0.75 of fp32's, BENCHMARKS.md); fp32 everywhere else, bf16 being far slower where emulated."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_bf16_support() is True else "fp32"


def activation_layout(config: RunConfig) -> torch.memory_format:
    """channels_last (faster oneDNN/cuDNN convolutions) for convolutional models unless turned off."""
    wanted = config.train.channels_last
    dcgan = config.model.model == "dcgan"
    return torch.channels_last if (dcgan if wanted is None else wanted and dcgan) else torch.contiguous_format


def judges_samples_independently(network: torch.nn.Module) -> bool:
    """Whether a network's output for each sample depends on that sample alone and one call's forward has no
    side effects: no batch statistics (BatchNorm) and no spectral norm (a power iteration per call)."""
    return not any(isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) or parametrize.is_parametrized(layer)
                   for layer in network.modules())


def place_network(network: torch.nn.Module, config: RunConfig, device: torch.device) -> torch.nn.Module:
    """Put a network on its device with the layout and kernels training uses there: channels_last activations
    (dcgan), in-place activation functions, and on CPU the kernels of :func:`tune_for_cpu`. The function and
    the parameters stay the same; training and sampling share this, so samples match the trainer's previews."""
    activations = activation_layout(config)
    network.to(device=device, memory_format=activations)
    for layer in network.modules():
        if isinstance(layer, (torch.nn.ReLU, torch.nn.LeakyReLU)):
            layer.inplace = True  # each follows a layer whose backward does not need its output: one tensor fewer
    if device.type == "cpu":
        tune_for_cpu(network, activations)
    return network


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto")
    return torch.device(name)

