"""The standard FID feature extractor: Inception-v3 with the TensorFlow FID weights, 2048-D pool features.

torchmetrics' FrechetInceptionDistance runs torch-fidelity's FeatureExtractorInceptionV3, but torch-fidelity
cannot be used here: installing it pulls another torch and torchvision, and ``import torch_fidelity`` imports
torchvision. So this module holds our own copy of that network (torch-fidelity's, itself adapted from
pytorch-fid, both Apache-2.0), which reproduces the TensorFlow graph of the original FID code:

- uint8 pixel values resized to 299x299 with TensorFlow 1.x's bilinear resize (no half-pixel centres),
  then scaled as (x - 128) / 128;
- the "FID" Inception blocks: average pools that exclude padding, and a max pool in the last block.

The weights are the TensorFlow 2015-12-05 Inception converted to PyTorch, one 91 MB file that ganforge never
downloads: it reads it from ``--inception-weights PATH``, from ``<data cache>/weights/``, or from torch hub's
cache ``$TORCH_HOME/hub/checkpoints/`` where pytorch-fid (``pt_inception-...``) and torch-fidelity / torchmetrics
(``weights-inception-...``) put the same file. It is loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE
# torch-fidelity's (and so torchmetrics') name for the same converted weights, in the same torch hub cache.
FIDELITY_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_FILES = (FID_WEIGHTS_FILE, FIDELITY_WEIGHTS_FILE)
INPUT_SIZE = 299
FEATURE_DIM = 2048
INFERENCE_BATCH = 50  # images per forward pass: about 1.5 GB of activations at 299x299
IGNORED_KEYS = ("num_batches_tracked", "AuxLogits.")  # in some conversions, unused by the FID network


# ---------------------------------------------------------------------------
# Where the weights are
# ---------------------------------------------------------------------------


def torch_hub_checkpoints() -> Path:
    """torch hub's download folder, ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weight_candidates(cache_dir: Path | None = None) -> list[Path]:
    """Where the weights are looked for, in order: ``<cache_dir>/weights/`` then torch hub's checkpoints."""
    folders = ([Path(cache_dir) / "weights"] if cache_dir is not None else []) + [torch_hub_checkpoints()]
    return [folder / name for folder in folders for name in WEIGHTS_FILES]


def find_inception_weights(path: Path | str | None = None, cache_dir: Path | None = None) -> Path:
    """The weights file: ``path`` if given (it must exist), else the first of :func:`weight_candidates` on disk."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise GanforgeError(
                f"Inception weights file {path} does not exist: pass the path of {FID_WEIGHTS_FILE} "
                f"(download {FID_WEIGHTS_URL})"
            )
        return path
    candidates = weight_candidates(cache_dir)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    folders = sorted({str(c.parent) for c in candidates}, key=[str(c.parent) for c in candidates].index)
    raise GanforgeError(
        f"the inception feature extractor needs the FID Inception-v3 weights {FID_WEIGHTS_FILE} (91 MB), "
        f"not found in {' or '.join(folders)}; ganforge does not download them: fetch {FID_WEIGHTS_URL} "
        f"(on another machine if this one is offline) and put it at {torch_hub_checkpoints() / FID_WEIGHTS_FILE}, "
        "or pass --inception-weights PATH; for digits, --feature-extractor classifier needs no download"
    )


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------


def resize_bilinear_tf1(x: Tensor, size: int) -> Tensor:
    """TensorFlow 1.x ``resize_bilinear`` (align_corners=False) of (N, C, H, W) to (N, C, size, size).

    Output pixel i samples the input at i * in / out (no half-pixel offset, unlike torch's bilinear), between
    pixels floor(.) and floor(.) + 1 clamped to the border. This is what the original FID graph does.
    """

    def grid(in_size: int) -> tuple[Tensor, Tensor, Tensor]:
        position = torch.arange(size, dtype=torch.float32, device=x.device) * (in_size / size)
        low = position.long()
        return low, (low + 1).clamp(max=in_size - 1), (position - low.float()).to(x.dtype)

    y_lo, y_hi, dy = grid(x.shape[2])
    x_lo, x_hi, dx = grid(x.shape[3])
    top, bottom = x[:, :, y_lo], x[:, :, y_hi]  # (N, C, size, W)
    top = top[..., x_lo] + (top[..., x_hi] - top[..., x_lo]) * dx
    bottom = bottom[..., x_lo] + (bottom[..., x_hi] - bottom[..., x_lo]) * dx
    return top + (bottom - top) * dy.view(-1, 1)


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 0.001, TensorFlow's) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: Tensor) -> Tensor:
    """TensorFlow's 3x3 average pool: padded zeros are not counted in the average."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(_avg_pool_3x3(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), branch3x3dbl, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(_avg_pool_3x3(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([branch3x3, branch7x7x3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """The last two blocks; the FID graph pools with an average in Mixed_7b and, oddly, a max in Mixed_7c."""

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_3x3(x)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)], 1)


class InceptionV3FID(nn.Module):
    """Inception-v3 of the FID graph, up to the 2048-D average pool; parameter names as in pytorch-fid's file.

    ``fc`` (2048 -> 1008 ImageNet logits) is kept so the weights file loads strictly, but FID does not use it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, pixels: Tensor) -> Tensor:  # (N, 3, H, W) float pixel values in [0, 255] -> (N, 2048)
        x = resize_bilinear_tf1(pixels, INPUT_SIZE)  # (N, 3, 299, 299)
        x = (x - 128) / 128
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (N, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)  # ... (N, 768, 17, 17) ... (N, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (N, 2048)


def load_inception_state(network: InceptionV3FID, path: Path) -> None:
    """Load a weights file into ``network``, checking every parameter is there with its shape."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - pickle, zip and format errors all mean "not this file"
        raise GanforgeError(
            f"cannot read Inception weights {path} ({type(error).__name__}); pass the PyTorch state dict "
            f"{FID_WEIGHTS_FILE} from {FID_WEIGHTS_URL}"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise GanforgeError(f"Inception weights {path} hold a {type(state).__name__}, not a state dict; "
                            f"pass {FID_WEIGHTS_FILE} from {FID_WEIGHTS_URL}")
    state = {key: value for key, value in state.items() if not any(ignored in key for ignored in IGNORED_KEYS)}
    expected = {key: value.shape for key, value in network.state_dict().items()
                if not any(ignored in key for ignored in IGNORED_KEYS)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(key for key in set(expected) & set(state) if tuple(state[key].shape) != tuple(expected[key]))
    if missing or unexpected or wrong:
        detail = "; ".join(f"{name}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                           if keys)
        raise GanforgeError(f"{path} is not the FID Inception-v3 weights ({detail}); "
                            f"pass {FID_WEIGHTS_FILE} from {FID_WEIGHTS_URL}")
    network.load_state_dict(state, strict=False)


class InceptionFeatures:
    """The ``inception`` feature extractor: ``features(images) -> (N, 2048)``.

    Images (N, C, H, W) are uint8 in [0, 255] or float in [-1, 1]; floats are rounded to 8-bit pixels first, as
    if saved to PNG, and one channel is repeated to three. Runs on ``device`` in batches of 50.
    """

    name = "inception"
    dim = FEATURE_DIM

    def __init__(self, network: InceptionV3FID, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Pool features (N, 2048) float32 of images (N, 1 or 3, H, W), on the extractor's device."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise GanforgeError(f"the inception extractor takes images (N, 1 or 3, H, W), got {tuple(images.shape)}")
        pieces = []
        for chunk in images.split(INFERENCE_BATCH):
            chunk = chunk.to(self.device)
            if chunk.dtype == torch.uint8:
                pixels = chunk.float()
            else:
                pixels = chunk.float().add(1).mul(127.5).round().clamp(0, 255)
            pieces.append(self.network(pixels.expand(-1, 3, -1, -1)))
        return torch.cat(pieces)


def load_inception(weights: Path | str | None = None, cache_dir: Path | None = None,
                   device: torch.device | str = "cpu") -> InceptionFeatures:
    """The inception extractor with weights from ``weights`` or the caches (see :func:`find_inception_weights`)."""
    path = find_inception_weights(weights, cache_dir)
    with torch.random.fork_rng(devices=[]):  # the random initialisation is overwritten: leave the caller's RNG alone
        network = InceptionV3FID()
    load_inception_state(network, path)
    return InceptionFeatures(network, device)
