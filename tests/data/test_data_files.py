"""Tests for ganforge.data.files: image folders, .npy/.npz arrays, torchvision sources."""

import logging
import re
import sys
import types
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data.files import load_array_file, load_image_folder, load_torchvision_dataset
from ganforge.errors import DataError

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
RED_LUMA = 76  # round(0.299 * 255), ITU-R 601


def save(image: Image.Image, path: Path, **options) -> Path:
    """Save `image` to `path`, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def solid(color: tuple[int, ...] | int, size: tuple[int, int] = (4, 4), mode: str = "RGB") -> Image.Image:
    """An image of one colour."""
    return Image.new(mode, size, color)


def thirds(width: int, height: int, vertical: bool) -> Image.Image:
    """Red, green and blue thirds side by side (or stacked when `vertical`)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    for index, color in enumerate((RED, GREEN, BLUE)):
        if vertical:
            pixels[index * height // 3 : (index + 1) * height // 3] = color
        else:
            pixels[:, index * width // 3 : (index + 1) * width // 3] = color
    return Image.fromarray(pixels)


def colors(images: torch.Tensor) -> list[tuple[int, ...]]:
    """The colour of each constant image in a uint8 (N, C, H, W) batch."""
    assert all(bool((image == image[:, :1, :1]).all()) for image in images), "images are not constant"
    return [tuple(image[:, 0, 0].tolist()) for image in images]


# --- image folders ---------------------------------------------------------------------------------


def test_folder_finds_nested_images_in_sorted_order_and_ignores_other_files(tmp_path):
    save(solid(40, mode="L"), tmp_path / "b.png")
    save(solid(10, mode="L"), tmp_path / "a" / "deep" / "er" / "x.BMP")
    save(solid(30, mode="L"), tmp_path / "a" / "z.png")
    save(solid(20, mode="L"), tmp_path / "a" / "y.Png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")

    images = load_image_folder(tmp_path, image_size=4, channels=1)

    assert images.dtype == torch.uint8 and images.shape == (4, 1, 4, 4)
    assert colors(images) == [(10,), (20,), (30,), (40,)]


def test_folder_converts_every_mode_compositing_alpha_on_white(tmp_path):
    palette = solid(1, mode="P")
    palette.putpalette([0, 0, 0, 0, 128, 0])
    cases = [
        (solid((10, 20, 30)), "png", (10, 20, 30)),
        (solid((200, 0, 0, 0), mode="RGBA"), "png", WHITE),  # fully transparent
        (solid((0, 0, 255, 255), mode="RGBA"), "png", BLUE),
        (solid((50, 0), mode="LA"), "png", WHITE),
        (solid(77, mode="L"), "png", (77, 77, 77)),
        (palette, "png", (0, 128, 0)),
        (solid((0, 255, 255, 0), mode="CMYK"), "tiff", RED),
        (solid(100 * 257, mode="I;16"), "png", (100, 100, 100)),  # 16-bit scaled, not clipped
        (solid(1, mode="1"), "png", WHITE),
        (solid((0, 0, 255)), "webp", BLUE),
    ]
    for index, (image, extension, _) in enumerate(cases):
        save(image, tmp_path / f"{index:02d}_{image.mode.replace(';', '')}.{extension}", lossless=True)

    images = load_image_folder(tmp_path, image_size=4, channels=3)

    assert colors(images) == [expected for _, _, expected in cases]


def test_folder_channels_one_uses_luma_and_channels_three_repeats_grey(tmp_path):
    save(solid(RED), tmp_path / "a.png")
    save(solid(90, mode="L"), tmp_path / "b.png")

    assert colors(load_image_folder(tmp_path, image_size=4, channels=1)) == [(RED_LUMA,), (90,)]
    assert colors(load_image_folder(tmp_path, image_size=4, channels=3)) == [RED, (90, 90, 90)]


def test_folder_uses_first_frame_of_animated_gif(tmp_path):
    frames = [solid(RED), solid(GREEN), solid(BLUE)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(tmp_path / "anim.gif").n_frames == 3

    assert colors(load_image_folder(tmp_path, image_size=4, channels=3)) == [RED]


def test_folder_applies_exif_orientation(tmp_path):
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[:2], pixels[2:] = RED, BLUE  # top red, bottom blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    save(Image.fromarray(pixels), tmp_path / "rotated.png", exif=exif)

    image = load_image_folder(tmp_path, image_size=4, channels=3)[0]

    assert (image[:, :, :2] == torch.tensor(BLUE).view(3, 1, 1)).all()
    assert (image[:, :, 2:] == torch.tensor(RED).view(3, 1, 1)).all()


@pytest.mark.parametrize("vertical", [False, True])
def test_folder_centre_crop_keeps_the_middle_third(tmp_path, vertical):
    width, height = (6, 18) if vertical else (18, 6)
    save(thirds(width, height, vertical), tmp_path / "thirds.png")

    assert colors(load_image_folder(tmp_path, image_size=6, channels=3)) == [GREEN]


def test_folder_resizes_shorter_side_before_cropping(tmp_path):
    save(thirds(60, 20, vertical=False), tmp_path / "wide.png")

    image = load_image_folder(tmp_path, image_size=10, channels=3)[0].int()

    assert image.shape == (3, 10, 10)
    assert (image[:, :, 1:-1] == torch.tensor(GREEN).view(3, 1, 1)).all()
    # Squashing the whole image would put red and blue in the edge columns; resampling bleeds only a little.
    assert (image - torch.tensor(GREEN).view(3, 1, 1)).abs().max() < 30


def test_folder_skips_unreadable_files_with_one_warning(tmp_path, caplog):
    save(solid(RED), tmp_path / "a_good.png")
    save(solid(BLUE), tmp_path / "b_good.jpg", quality=100)
    (tmp_path / "c_garbage.png").write_bytes(b"this is not an image")
    (tmp_path / "d_empty.jpg").write_bytes(b"")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    complete = save(noise, tmp_path / "full.png").read_bytes()
    (tmp_path / "full.png").unlink()
    (tmp_path / "e_truncated.png").write_bytes(complete[: len(complete) // 2])
    (tmp_path / "f_garbage.gif").write_bytes(b"GIF89a nonsense")
    caplog.set_level(logging.WARNING, logger="ganforge")

    images = load_image_folder(tmp_path, image_size=4, channels=3)

    assert images.shape == (2, 3, 4, 4)
    assert images[0].eq(torch.tensor(RED).view(3, 1, 1)).all()
    assert (images[1].int() - torch.tensor(BLUE).view(3, 1, 1)).abs().max() <= 2  # JPEG
    [record] = [record for record in caplog.records if record.name == "ganforge"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "skipped 4 of 6" in message
    assert "c_garbage.png, d_empty.jpg, e_truncated.png and 1 more" in message


def test_folder_skips_decompression_bombs(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    save(solid(RED, size=(8, 8)), tmp_path / "a_small.png")  # 64 pixels
    save(solid(GREEN, size=(12, 12)), tmp_path / "b_warns.png")  # 144: Pillow warns
    save(solid(BLUE, size=(16, 16)), tmp_path / "c_bomb.png")  # 256 > 2 * limit: Pillow raises
    caplog.set_level(logging.WARNING, logger="ganforge")

    images = load_image_folder(tmp_path, image_size=4, channels=3)

    assert colors(images) == [RED]
    assert "skipped 2 of 3" in caplog.text and "b_warns.png, c_bomb.png" in caplog.text


def test_folder_errors(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"junk")
    (tmp_path / "worse.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"none of the 2 image files .* could be read \(bad.png, worse.jpg\)"):
        load_image_folder(tmp_path, image_size=4, channels=3)

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"no image files found in .*empty \(looked recursively for .*\.png.*\.webp"):
        load_image_folder(tmp_path / "empty", image_size=4, channels=3)

    with pytest.raises(DataError, match=r"data folder .*missing does not exist"):
        load_image_folder(tmp_path / "missing", image_size=4, channels=3)
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_image_folder(tmp_path / "bad.png", image_size=4, channels=3)
    with pytest.raises(DataError, match="image size 0 is invalid"):
        load_image_folder(tmp_path, image_size=0, channels=3)
    with pytest.raises(DataError, match="channels 2 is not supported"):
        load_image_folder(tmp_path, image_size=4, channels=2)


# --- .npy / .npz arrays ----------------------------------------------------------------------------


def grid(*shape: int) -> np.ndarray:
    """Distinct uint8 values in the given shape, so any transposition mistake shows."""
    return (np.arange(np.prod(shape)) % 251).astype(np.uint8).reshape(shape)


def saved(tmp_path: Path, array: np.ndarray, name: str = "data.npy") -> Path:
    """Save `array` as an .npy file in `tmp_path` and return its path."""
    np.save(tmp_path / name, array)
    return tmp_path / name


def test_array_layouts_become_channels_first(tmp_path):
    nhwc, nchw, nhw = grid(2, 5, 5, 3), grid(2, 3, 5, 5), grid(2, 5, 5)
    rgba = grid(2, 5, 5, 4)

    assert torch.equal(load_array_file(saved(tmp_path, nhwc), None, None), torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    assert torch.equal(load_array_file(saved(tmp_path, nchw), None, None), torch.from_numpy(nchw))
    assert torch.equal(load_array_file(saved(tmp_path, nhw), None, None), torch.from_numpy(nhw)[:, None])
    dropped_alpha = load_array_file(saved(tmp_path, rgba), None, None)
    assert torch.equal(dropped_alpha, torch.from_numpy(rgba[..., :3]).permute(0, 3, 1, 2))
    assert load_array_file(saved(tmp_path, grid(2, 5, 5, 1)), None, None).shape == (2, 1, 5, 5)
    assert load_array_file(saved(tmp_path, grid(2, 1, 5, 5)), None, None).shape == (2, 1, 5, 5)


def test_array_dtypes(tmp_path):
    floats = np.linspace(-1, 1, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    loaded = load_array_file(saved(tmp_path, floats), None, None)
    assert loaded.dtype == torch.float32 and torch.equal(loaded, torch.from_numpy(floats.astype(np.float32)))

    integers = load_array_file(saved(tmp_path, np.full((1, 4, 4), 255, np.int64)), None, None)
    assert integers.dtype == torch.uint8 and (integers == 255).all()


@pytest.mark.parametrize(
    "array, message",
    [
        (np.full((1, 4, 4), 1.5), r"floats from .* to 1\.5: scale them to \[-1, 1\]"),
        (np.array([[[np.nan, 0.0], [np.inf, 0.0]]]), "holds 2 NaN or infinite values"),
        (np.full((1, 4, 4), 300, np.int16), "int16 values from 300 to 300: integer images must lie in 0..255"),
        (np.ones((1, 4, 4), bool), "holds bool values"),
        (np.zeros((0, 4, 4), np.uint8), "empty array of shape"),
        (np.zeros((1, 3, 4, 6), np.uint8), r"4x6 \(HxW\) images: resize or crop them to square"),
        (np.zeros((1, 4, 4, 4, 4), np.uint8), r"has shape \(1, 4, 4, 4, 4\): expected images as"),
        (np.zeros((1, 2, 8, 8), np.uint8), r"has shape \(1, 2, 8, 8\)"),
    ],
)
def test_array_rejects_bad_values_and_shapes(tmp_path, array, message):
    with pytest.raises(DataError, match=message):
        load_array_file(saved(tmp_path, array), None, None)


def test_array_refuses_pickled_objects(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"payload": 1}, None], dtype=object), allow_pickle=True)

    with pytest.raises(DataError, match="holds pickled Python objects, which ganforge never loads"):
        load_array_file(path, None, None)


def test_array_file_errors(tmp_path):
    with pytest.raises(DataError, match="array file .*missing.npy does not exist"):
        load_array_file(tmp_path / "missing.npy", None, None)
    (tmp_path / "junk.npy").write_bytes(b"definitely not numpy")
    with pytest.raises(DataError, match="is not a NumPy .npy/.npz file"):
        load_array_file(tmp_path / "junk.npy", None, None)
    complete = saved(tmp_path, grid(4, 8, 8), "whole.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(complete[:200])
    with pytest.raises(DataError, match=r"could not read .*cut.npy as a .npy/.npz array \(.*\): re-save it"):
        load_array_file(tmp_path / "cut.npy", None, None)
    with pytest.raises(DataError, match="is not a .npy or .npz file"):
        load_array_file(tmp_path / "images.csv", None, None)
    with pytest.raises(DataError, match="channels 4 is not supported"):
        load_array_file(tmp_path / "whole.npy", None, 4)


def test_npz_key_selection(tmp_path):
    images, labels = grid(2, 4, 4), np.arange(2)
    np.savez(tmp_path / "x.npz", y=labels, x=images)
    np.savez(tmp_path / "images.npz", labels=labels, images=images)
    np.savez_compressed(tmp_path / "only.npz", images)
    np.savez(tmp_path / "ambiguous.npz", faces=images, labels=labels)

    for name in ("x.npz", "images.npz", "only.npz"):
        assert torch.equal(load_array_file(tmp_path / name, None, None), torch.from_numpy(images)[:, None])
    with pytest.raises(DataError, match=r"holds arrays \['faces', 'labels'\]: name the images 'x' or 'images'"):
        load_array_file(tmp_path / "ambiguous.npz", None, None)


def test_points_are_returned_as_float32_pairs(tmp_path):
    points = np.random.default_rng(0).normal(size=(5, 2))

    loaded = load_array_file(saved(tmp_path, points), None, None)

    assert loaded.dtype == torch.float32 and torch.equal(loaded, torch.from_numpy(points.astype(np.float32)))
    assert torch.equal(load_array_file(saved(tmp_path, points), 64, 3), loaded)


def test_array_resize_keeps_constant_images_constant(tmp_path):
    up = load_array_file(saved(tmp_path, np.full((2, 8, 8, 3), 100, np.uint8)), 16, None)
    assert up.dtype == torch.uint8 and up.shape == (2, 3, 16, 16) and (up == 100).all()

    down = load_array_file(saved(tmp_path, np.full((2, 1, 8, 8), -0.5, np.float32)), 4, None)
    assert down.dtype == torch.float32 and down.shape == (2, 1, 4, 4)
    assert torch.allclose(down, torch.full_like(down, -0.5))


def test_array_resize_averages_when_shrinking(tmp_path):
    checkerboard = np.indices((8, 8)).sum(axis=0) % 2 * 255  # alternating 0 and 255
    image = load_array_file(saved(tmp_path, checkerboard[None].astype(np.uint8)), 2, None)

    assert ((image == 127) | (image == 128)).all()


def test_array_channel_conversion(tmp_path):
    red = np.zeros((1, 4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert (load_array_file(saved(tmp_path, red), None, 1) == RED_LUMA).all()

    float_red = np.full((1, 3, 4, 4), -1.0, np.float32)
    float_red[:, 0] = 1.0
    luma = load_array_file(saved(tmp_path, float_red), None, 1)
    assert torch.allclose(luma, torch.full((1, 1, 4, 4), 0.299 - 0.587 - 0.114))

    grey = grid(2, 4, 4)
    repeated = load_array_file(saved(tmp_path, grey), None, 3)
    assert repeated.shape == (2, 3, 4, 4) and all(torch.equal(repeated[:, c], torch.from_numpy(grey)) for c in range(3))


# --- torchvision -----------------------------------------------------------------------------------


class UnusedDataset:
    def __init__(self, *args, **kwargs):
        raise AssertionError("this data set should not be loaded")


def fake_torchvision(monkeypatch, **dataset_classes) -> None:
    """Install a stand-in `torchvision.datasets` holding the given classes."""
    torchvision = types.ModuleType("torchvision")
    torchvision.datasets = types.ModuleType("torchvision.datasets")
    for name in ("MNIST", "FashionMNIST", "CIFAR10", "CelebA"):
        setattr(torchvision.datasets, name, dataset_classes.get(name, UnusedDataset))
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", torchvision.datasets)


def test_torchvision_missing_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)

    needs_extra = r"the 'mnist' data source needs torchvision: pip install 'ganforge\[torchvision\]'"
    with pytest.raises(DataError, match=needs_extra):
        load_torchvision_dataset("mnist", tmp_path, image_size=28, channels=1)


def test_torchvision_offline_download_is_a_data_error(tmp_path, monkeypatch):
    class OfflineMNIST:
        def __init__(self, root, train, download):
            raise URLError("Temporary failure in name resolution")

    fake_torchvision(monkeypatch, MNIST=OfflineMNIST)

    offline = f"could not download the 'mnist' data set to {re.escape(str(tmp_path))} .*the machine may be offline"
    with pytest.raises(DataError, match=offline):
        load_torchvision_dataset("mnist", tmp_path, image_size=28, channels=1)


def test_torchvision_unknown_name(tmp_path):
    with pytest.raises(DataError, match=r"unknown torchvision data set 'svhn' \(use one of mnist, fashion-mnist"):
        load_torchvision_dataset("svhn", tmp_path, image_size=28, channels=1)


def test_torchvision_arrays_are_resized_and_converted(tmp_path, monkeypatch):
    class FakeMNIST:
        def __init__(self, root, train, download):
            assert (root, train, download) == (str(tmp_path), True, True)
            self.data = torch.tensor([0, 200], dtype=torch.uint8).view(2, 1, 1).expand(2, 28, 28)

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            self.data = np.zeros((3, 32, 32, 3), np.uint8)
            self.data[..., 0] = 255

    fake_torchvision(monkeypatch, MNIST=FakeMNIST, CIFAR10=FakeCIFAR10)

    digits = load_torchvision_dataset("mnist", tmp_path, image_size=32, channels=3)
    assert digits.dtype == torch.uint8 and colors(digits) == [(0, 0, 0), (200, 200, 200)]
    assert digits.shape == (2, 3, 32, 32)
    cifar = load_torchvision_dataset("cifar10", tmp_path, image_size=16, channels=1)
    assert cifar.shape == (3, 1, 16, 16) and colors(cifar) == [(RED_LUMA,)] * 3


def test_torchvision_celeba_loads_its_aligned_image_folder(tmp_path, monkeypatch):
    folder = tmp_path / "celeba" / "img_align_celeba"
    save(solid(GREEN, size=(8, 10)), folder / "000001.jpg", quality=100)

    class FakeCelebA:
        base_folder = "celeba"

        def __init__(self, root, split, download):
            self.root = root

    fake_torchvision(monkeypatch, CelebA=FakeCelebA)

    faces = load_torchvision_dataset("celeba", tmp_path, image_size=6, channels=3)

    assert faces.shape == (1, 3, 6, 6)
    assert (faces.int() - torch.tensor(GREEN).view(3, 1, 1)).abs().max() <= 2  # JPEG


# --- float images, empty archives, and what a loader says it read ------------------------------------


def float_tiff(path: Path, pixels: np.ndarray) -> Path:
    """A 32-bit float greyscale TIFF (Pillow mode "F") holding `pixels`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.float32), mode="F").save(path)
    assert Image.open(path).mode == "F"
    return path


def test_a_float_tiff_in_zero_one_is_scaled_to_0_255_with_a_warning_not_read_as_black(tmp_path, caplog):
    ramp = np.linspace(0, 1, 16).reshape(4, 4)
    float_tiff(tmp_path / "a_unit.tif", ramp)
    float_tiff(tmp_path / "b_signed.tif", ramp * 2 - 1)  # [-1, 1]: the same picture
    float_tiff(tmp_path / "c_bytes.tif", ramp * 255)  # 0..255: Pillow's own float greyscale, kept
    caplog.set_level(logging.WARNING, logger="ganforge")

    images = load_image_folder(tmp_path, image_size=4, channels=1)

    expected = torch.from_numpy((ramp * 255).round().astype(np.uint8))
    assert images.shape == (3, 1, 4, 4)
    for image in images:
        assert (image[0].int() - expected.int()).abs().max() <= 1
    assert images[0].max() == 255, "not the all-black picture Pillow's own conversion gives"
    [record] = caplog.records
    assert record.getMessage() == ("read float pixels in [0, 1] as brightness 0..255 (x 255) in 1 of 3 image files "
                                   f"in {tmp_path}: a_unit.tif")


def test_float_tiffs_beyond_every_known_range_are_skipped_naming_their_range_or_refused(tmp_path, caplog):
    save(solid(RED), tmp_path / "a_good.png")
    float_tiff(tmp_path / "b_wide.tif", np.linspace(-3, 700, 16).reshape(4, 4))
    caplog.set_level(logging.WARNING, logger="ganforge")

    assert colors(load_image_folder(tmp_path, image_size=4, channels=3)) == [RED]
    assert caplog.messages == [f"skipped 1 of 2 image files in {tmp_path} whose float pixels lie outside [0, 1], "
                               "[-1, 1] or 0..255: b_wide.tif (-3 to 700)"]

    (tmp_path / "a_good.png").unlink()
    with pytest.raises(DataError, match=r"none of the 1 image files in .* has float pixels in \[0, 1\], \[-1, 1\] "
                                        r"or 0\.\.255 \(b_wide\.tif\): .*rescale float images"):
        load_image_folder(tmp_path, image_size=4, channels=3)


def test_a_float_array_in_zero_one_is_scaled_to_minus_one_one_with_a_warning(tmp_path, caplog):
    unit = np.linspace(0, 1, 2 * 4 * 4).reshape(2, 1, 4, 4)
    caplog.set_level(logging.WARNING, logger="ganforge")

    loaded = load_array_file(saved(tmp_path, unit), None, None)

    assert loaded.dtype == torch.float32
    assert torch.allclose(loaded, torch.from_numpy(unit * 2 - 1).float())
    assert "holds floats in [0, 1] (from 0 to 1)" in caplog.text and "scaled them to [-1, 1]" in caplog.text
    signed = np.linspace(-1, 1, 32).reshape(2, 1, 4, 4)
    caplog.clear()
    assert torch.equal(load_array_file(saved(tmp_path, signed), None, None), torch.from_numpy(signed).float())
    assert caplog.records == [], "floats in [-1, 1] are taken as they are"
    with pytest.raises(DataError, match=r"floats from 0 to 255: scale them to \[-1, 1\]"):
        load_array_file(saved(tmp_path, unit * 255), None, None)


def test_an_empty_npz_or_empty_file_says_so_not_wrong_header(tmp_path):
    np.savez(tmp_path / "nothing.npz")
    (tmp_path / "zero.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"nothing\.npz holds no arrays \(an empty \.npz\): save the images with "
                                        r"np\.savez\(path, x=images\)"):
        load_array_file(tmp_path / "nothing.npz", None, None)
    with pytest.raises(DataError, match=r"zero\.npy is an empty file \(0 bytes\)"):
        load_array_file(tmp_path / "zero.npy", None, None)


def test_loaders_say_in_one_info_line_how_many_images_they_gave_and_skipped(tmp_path, caplog):
    for index in range(3):
        save(solid(RED), tmp_path / "folder" / f"{index}.png")
    (tmp_path / "folder" / "broken.png").write_bytes(b"junk")
    np.save(tmp_path / "images.npy", grid(5, 4, 4))
    np.save(tmp_path / "points.npy", np.zeros((7, 2)))
    caplog.set_level(logging.INFO, logger="ganforge")

    load_image_folder(tmp_path / "folder", image_size=4, channels=3)
    load_array_file(tmp_path / "images.npy", None, None)
    load_array_file(tmp_path / "points.npy", None, None)

    assert [record.getMessage() for record in caplog.records if record.levelno == logging.INFO] == [
        f"read 3 images from {tmp_path / 'folder'} (1 of 4 files skipped)",
        f"read 5 images from {tmp_path / 'images.npy'}",
        f"read 7 points from {tmp_path / 'points.npy'}",
    ]
