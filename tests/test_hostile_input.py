"""Hostile input: random configs, image files and arrays are used or refused with one clear line.

Property-based (hypothesis): whatever the config and data loaders are given,
they return data of the documented form or raise the package's own error
(ConfigError, DataError) with a one-line message: never another exception,
never a hang, never an unpickled object, and Pillow's decompression-bomb
limit stays on.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import resource
import signal
import struct
import tempfile
import time
import zipfile
import zlib
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from ganforge.config.io import load_yaml
from ganforge.config.schema import DataConfig, RunConfig, apply_overrides, config_keys
from ganforge.config.validate import SEED_RANGE, UPPER_LIMITS, validate
from ganforge.data import load_data
from ganforge.data.files import load_array_file, load_image_folder
from ganforge.errors import ConfigError, DataError, GanforgeError

PILLOW_DEFAULT_LIMIT = 1024 * 1024 * 1024 // 4 // 3  # pixels: Pillow's own MAX_IMAGE_PIXELS (PIL/Image.py)
SMALL_LIMIT = 100_000  # pixels; the random folders' valid images stay under it (at most 300 x 300)
PROPERTY = settings(max_examples=30, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
HANG_GUARD_SECONDS = 120


class Hang(BaseException):
    """Raised in a test that runs for minutes; not an Exception, so hypothesis does not retry it while shrinking."""


@pytest.fixture(autouse=True)
def hang_guard():
    """Fail a test that runs for minutes with the traceback of where it hangs, rather than stall CI."""
    if not hasattr(signal, "SIGALRM"):  # Windows
        yield
        return

    def hung(signum, frame):
        raise Hang(f"still running after {HANG_GUARD_SECONDS} s: a loader hangs")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_GUARD_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_one_line(error: GanforgeError) -> None:
    message = str(error)
    assert message.strip() and len(message.splitlines()) == 1, f"not one line: {message!r}"


@contextlib.contextmanager
def max_image_pixels(limit: int):
    """Lower Pillow's decompression-bomb limit for the `with` block (hypothesis examples cannot use monkeypatch)."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


# --- configs ---------------------------------------------------------------------------------------

SECTIONS = ("model", "data", "train")

huge_ints = st.sampled_from([2**31, 2**63, 2**64, -(2**63) - 1, 10**308, 10**400, -(10**4000)])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-3, max_value=3000),
    huge_ints,
    st.floats(),  # nan, inf, -0.0 and subnormals included
    st.text(max_size=20),
    st.sampled_from(["dcgan", "toy", "mlp", "minimax", "cpu", "cuda", "auto", "rollback", "d-first", "sum",
                     "fp32", "1e-3", "64", "nan", "inf", "-1", "0x10", "1_000", "a\0b", "digits", "ring8"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                            inner, max_size=3),
                      max_leaves=8)
random_keys = st.text(max_size=12)  # line breaks included: messages escape keys
keys = st.one_of(
    st.sampled_from(config_keys()),
    st.sampled_from(config_keys()).map(lambda key: key.replace("_", "-")),
    random_keys,
    st.integers(-5, 5),
    st.booleans(),
)
sections = st.dictionaries(st.sampled_from(SECTIONS), st.dictionaries(keys, values, max_size=4), max_size=3)
config_mappings = st.builds(lambda flat, nested: {**flat, **nested},
                            st.dictionaries(keys, values, max_size=6), sections)

YAML_FRAGMENTS = [
    "model: ", "train:\n  ", "data:\n  ", "image_size: ", "lr_d: ", "seed: ", "z_dim: ", "width: ", "epochs: ",
    "batch_size: ", "steps: ", "compile: ", "\n", "\n  ", "- ", "[", "]", "{", "}", ", ", ": ", "? ", "&a ", "*a",
    "<<: *a", "!!binary ", "!!bool ", "!!timestamp ", "!!int ", "!!float ", "!!omap ", "!!pairs ", "!!set ",
    "!!null ", "!!str ", "!!seq ", "!!map ", "!!python/object:os.system ", "''", "_", "+", "-", "~", "null", "yes",
    "no", ".nan", ".inf", "-.inf", "0x1F", "0o17", "1e400", "1_000", "2020-02-30", "2001-12-14t21:59:43.10-05:00",
    "12:30:45", "'q'", '"\\u2028"', "|\n  text\n", ">\n  folded\n", "--- ", "...", "%YAML 1.1\n", "#c", "\t",
    "\x00", "\ufeff", "a", "64", "1" * 4301, "é",
]
yaml_texts = st.lists(st.sampled_from(YAML_FRAGMENTS), max_size=25).map("".join).map(str.encode)


def check_config_file(data: bytes) -> RunConfig | None:
    """Load `data` as a config file through the CLI's path; return the config, or None if refused properly."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "config.yaml")
        path.write_bytes(data)
        try:
            config = apply_overrides(RunConfig(), load_yaml(path))
            validate(config)
        except ConfigError as error:
            assert_one_line(error)
            return None
    for section in SECTIONS:
        for f in fields(getattr(config, section)):
            assert_declared_type(f.name, getattr(getattr(config, section), f.name), f.type)
    return config


def assert_declared_type(key: str, value: object, type_name: str) -> None:
    optional = type_name.endswith(" | None")
    base = {"int": int, "float": float, "bool": bool, "str": str}[type_name.removesuffix(" | None")]
    if value is None:
        assert optional, f"{key} is None but is declared {type_name}"
    else:
        assert type(value) is base, f"{key} = {value!r} is a {type(value).__name__}, declared {type_name}"


@PROPERTY
@given(config_mappings)
def test_random_config_mappings_load_or_raise_one_line_config_error(mapping):
    check_config_file(yaml.safe_dump(mapping, allow_unicode=True).encode())


@PROPERTY
@given(st.one_of(st.binary(max_size=2000), yaml_texts))
def test_random_bytes_as_config_load_or_raise_one_line_config_error(data):
    check_config_file(data)


def test_config_file_that_is_not_text_or_not_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    for data, message in [
        (b"lr_d: \xff\xfe", "is not valid YAML"),  # invalid UTF-8
        (b"data: 2020-02-30", r"is not valid YAML \(day is out of range"),
        (b"steps: " + b"9" * 5000, "is not valid YAML"),  # beyond Python's 4300-digit int parsing
        (b"lr_d: " + b"9" * 400, r"config key 'lr_d' must be a number, got <an integer of 400 digits>"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not valid YAML"),
        (b"- a\n- b\n", "must hold a mapping of keys to values, got list"),
        (b'model: "dcgan\\nx"', r"model 'dcgan\\nx' is not one of"),  # a line break, shown escaped
        (b"lr_d: !!float ''", "has a value that does not fit its YAML tag"),
        (b"compile: !!bool maybe", "has a value that does not fit its YAML tag"),
        (b"data: !!timestamp soon", "has a value that does not fit its YAML tag"),
    ]:
        path.write_bytes(data)
        with pytest.raises(ConfigError, match=message) as caught:
            validate(apply_overrides(RunConfig(), load_yaml(path)))
        assert_one_line(caught.value)
    (tmp_path / "utf16.yaml").write_bytes("seed: 7\n".encode("utf-16"))  # a BOM names the encoding
    assert load_yaml(tmp_path / "utf16.yaml") == {"seed": 7}


@pytest.mark.parametrize("nesting", [" " + "[" * 100_000 + "]" * 100_000, " " + "{a: " * 50_000 + "}" * 50_000,
                                     "\n" + "".join("  " * depth + "-\n" for depth in range(1, 900))])
def test_deeply_nested_yaml_is_refused_quickly(tmp_path, nesting):
    path = tmp_path / "deep.yaml"
    path.write_text("model:" + nesting)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="nests too deeply to be a config") as caught:
        load_yaml(path)
    assert time.perf_counter() - start < 30
    assert_one_line(caught.value)


def test_yaml_alias_bomb_is_refused_quickly_without_expanding(tmp_path):
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]  # 9**10 strings in all
    path = tmp_path / "bomb.yaml"
    for tail in ("", "lr_d: *l9", "train: {data: *l9}"):
        path.write_text("\n".join(lines + [tail]))
        start = time.perf_counter()
        with pytest.raises(ConfigError) as caught:
            validate(apply_overrides(RunConfig(), load_yaml(path)))
        assert time.perf_counter() - start < 5
        assert_one_line(caught.value)
        assert len(str(caught.value)) < 1000


def test_config_file_larger_than_any_config_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# padding\n" * 200_000)
    with pytest.raises(ConfigError, match=r"is 2,000,000 bytes, more than the 1,000,000 a config may have"):
        load_yaml(path)


@pytest.mark.parametrize("key", sorted(UPPER_LIMITS))
def test_upper_limits_name_the_value_the_limit_and_the_fix(key):
    limit, usual = UPPER_LIMITS[key]
    validate(apply_overrides(RunConfig(), {key: limit}))
    with pytest.raises(ConfigError, match=rf"^{key} {limit + 1}(\.0)? is above the limit of {limit:,}: use at most "
                                          rf"{limit:,} \(e\.g\. {usual}\)$"):
        validate(apply_overrides(RunConfig(), {key: limit + 1}))
    huge = 1e300 if key == "epochs" else 10**5000  # an int through the Python API has no 4300-digit limit
    with pytest.raises(ConfigError, match=rf"^{key} (1e\+300|<an integer of 5001 digits>) is above the limit"):
        validate(apply_overrides(RunConfig(), {key: huge}))


def test_seed_must_fit_in_64_bits_and_paths_cannot_hold_nul():
    for seed in SEED_RANGE:
        validate(apply_overrides(RunConfig(), {"seed": seed}))
    for seed in (SEED_RANGE[0] - 1, SEED_RANGE[1] + 1):
        with pytest.raises(ConfigError, match=rf"seed {seed} does not fit in 64 bits"):
            validate(apply_overrides(RunConfig(), {"seed": seed}))
    for key in ("data", "data_root"):
        with pytest.raises(ConfigError, match=rf"{key} 'a\\x00b' contains a NUL character"):
            validate(apply_overrides(RunConfig(), {key: "a\0b"}))


def test_unknown_key_with_a_line_break_is_reported_on_one_line(tmp_path):
    path = tmp_path / "key.yaml"
    path.write_text('"lr\\nd": 1\n')
    with pytest.raises(ConfigError) as caught:
        apply_overrides(RunConfig(), load_yaml(path))
    assert_one_line(caught.value)


# --- image folders ---------------------------------------------------------------------------------

MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F")
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
MAGIC = [  # the first bytes of each format, so that random bytes reach its decoder
    b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff\xe0", b"BM", b"II*\x00", b"MM\x00*",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
]


def random_image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    """Noise in `mode`: every channel uses its whole range."""
    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, (height, width)).astype(bool))
    if mode in ("I;16", "I", "F"):
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        pixels = rng.integers(0, 65536, (height, width)).astype(dtype)
        if mode == "F":
            pixels = pixels / 65535 * rng.choice([1.0, 255.0, 1e6])
        return Image.fromarray(pixels.astype(dtype))
    image = Image.new(mode, size)
    image.frombytes(rng.integers(0, 256, len(image.tobytes()), dtype=np.uint8).tobytes())
    return image


def encode(image: Image.Image, image_format: str, frames: int = 1) -> bytes | None:
    """The image's file in `image_format` (`frames` > 1: animated), or None where Pillow cannot write it."""
    buffer = io.BytesIO()
    extra = {"save_all": True, "append_images": [image.rotate(90 * i) for i in range(1, frames)]} if frames > 1 else {}
    try:
        image.save(buffer, image_format, **extra)
    except (OSError, ValueError, KeyError):  # Pillow refuses the mode (e.g. F as JPEG), or animation (BMP)
        return None
    return buffer.getvalue()


WRITABLE = [(mode, fmt, frames) for mode, fmt, frames in itertools.product(MODES, FORMATS, (1, 3))
            if encode(random_image(mode, (3, 2), 0), fmt, frames) is not None]


def png_declaring(width: int, height: int) -> bytes:
    """A tiny 8-bit greyscale PNG whose header declares width x height pixels, with one row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    first_row = zlib.compress(b"\0" * (width + 1))  # filter byte + width pixels
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", first_row) + chunk(b"IEND", b"")


sides = st.integers(1, 300)


@st.composite
def image_files(draw) -> tuple[str, str, bytes]:
    """(kind, extension, bytes): the loader must read a "readable" file, skip an "unreadable" one, may do either
    with an "unknown" one (a truncated or corrupted image can still decode)."""
    kind = draw(st.sampled_from(["valid", "valid", "truncated", "corrupted", "empty", "random", "bomb"]))
    if kind == "empty":
        return "unreadable", draw(st.sampled_from(list(FORMATS.values()))).upper(), b""
    if kind == "random":
        data = draw(st.sampled_from([b""] + MAGIC)) + draw(st.binary(max_size=300))
        return "unknown", draw(st.sampled_from(list(FORMATS.values()))), data
    if kind == "bomb":  # refused by the lowered limit: Pillow warns above it and raises above twice it
        if draw(st.booleans()):
            width, height = draw(st.integers(400, 100_000)), draw(st.integers(400, 100_000))
            return "unreadable", ".png", png_declaring(width, height)
        mode, fmt, frames = draw(st.sampled_from(WRITABLE))
        size = draw(st.integers(SMALL_LIMIT // 250 + 1, 1000)), 250  # warns up to 800 wide, raises beyond
        return "unreadable", FORMATS[fmt], encode(random_image(mode, size, 0), fmt, frames)
    (mode, fmt, frames), size = draw(st.sampled_from(WRITABLE)), (draw(sides), draw(sides))
    image = random_image(mode, size, draw(st.integers(0, 2**32 - 1)))
    data = encode(image, fmt, frames)
    if kind == "valid":
        # A float TIFF keeps its floats; beyond [0, 1], [-1, 1] and 0..255 the loader skips it (its range says why).
        beyond = mode == "F" and fmt == "TIFF" and float(np.asarray(image).max()) > 255
        extension = FORMATS[fmt].upper() if draw(st.booleans()) else FORMATS[fmt]
        return "unreadable" if beyond else "readable", extension, data
    if kind == "truncated":
        return "unknown", FORMATS[fmt], data[: draw(st.integers(0, len(data) - 1))]
    corrupted = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        corrupted[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return "unknown", FORMATS[fmt], bytes(corrupted)


@PROPERTY
@given(st.lists(image_files(), min_size=1, max_size=6), st.integers(1, 64), st.sampled_from([1, 3]))
def test_random_image_folders_load_readable_images_or_raise_one_line_data_error(files, size, channels):
    readable = sum(kind == "readable" for kind, _, _ in files)
    unknown = sum(kind == "unknown" for kind, _, _ in files)
    with tempfile.TemporaryDirectory() as folder, max_image_pixels(SMALL_LIMIT):
        for index, (_, extension, data) in enumerate(files):
            Path(folder, f"{index:02d}{extension}").write_bytes(data)
        try:
            images = load_image_folder(Path(folder), size, channels)
        except DataError as error:
            assert_one_line(error)
            assert readable == 0, f"refused a folder holding {readable} valid images: {error}"
            event("refused the folder")
            return
    event(f"loaded {len(images)} of {len(files)} files")
    assert images.dtype == torch.uint8 and images.shape[1:] == (channels, size, size)
    assert readable <= len(images) <= readable + unknown
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT_LIMIT


def test_png_declaring_huge_dimensions_is_refused_with_pillows_default_limit(tmp_path):
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT_LIMIT  # not lowered for this test
    bomb = png_declaring(100_000, 100_000)  # 10**10 pixels: 10 GB as greyscale
    assert len(bomb) < 1000
    (tmp_path / "bomb.png").write_bytes(bomb)
    (tmp_path / "warns.png").write_bytes(png_declaring(10_000, 10_000))  # 10**8: between the limit and twice it
    memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    refused = r"none of the 2 image files .* could be read \(bomb.png, warns.png\)"
    with pytest.raises(DataError, match=refused) as caught:
        load_image_folder(tmp_path, 64, 3)
    assert_one_line(caught.value)

    random_image("RGB", (8, 8), 0).save(tmp_path / "good.png")
    assert load_image_folder(tmp_path, 8, 3).shape == (1, 3, 8, 8)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before < 500 * 1024  # no gigabytes allocated


def test_pillow_limit_stays_on_after_import_and_loading(tmp_path):
    import ganforge.api  # noqa: F401  the modules a user imports
    import ganforge.cli  # noqa: F401

    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT_LIMIT
    random_image("RGB", (8, 8), 0).save(tmp_path / "a.png")
    load_image_folder(tmp_path, 8, 3)
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT_LIMIT


# --- arrays ----------------------------------------------------------------------------------------

DTYPES = ("uint8", "int8", "int16", "int64", "uint16", "float16", "float32", "float64", "bool", "complex64",
          "object", "<U3")
dims = st.integers(0, 5)
shapes = st.one_of(
    st.lists(dims, max_size=5).map(tuple),  # anything, 0-d to 5-d, empty included
    st.tuples(dims, dims).map(lambda nd: (nd[0], nd[1], nd[1])),  # (N, H, W)
    st.tuples(dims, dims, st.sampled_from([1, 2, 3, 4])).map(lambda ndc: (ndc[0], ndc[1], ndc[1], ndc[2])),
    st.tuples(dims, st.sampled_from([1, 3]), dims).map(lambda ncd: (ncd[0], ncd[1], ncd[2], ncd[2])),
    st.tuples(dims, st.just(2)),  # (N, 2) points
)


@st.composite
def numpy_arrays(draw) -> np.ndarray:
    dtype, shape = np.dtype(draw(st.sampled_from(DTYPES))), draw(shapes)
    if dtype == object:
        return draw(hnp.arrays(dtype, shape, elements=st.one_of(st.none(), st.integers(), st.text(max_size=3))))
    if dtype.kind in "uif" and draw(st.booleans()):  # values a loader must accept
        in_range = st.floats(-1, 1, width=16) if dtype.kind == "f" else st.integers(0, min(255, np.iinfo(dtype).max))
        return draw(hnp.arrays(dtype, shape, elements=in_range))
    return draw(hnp.arrays(dtype, shape))  # the dtype's whole range: NaN, inf, negative, too large


npz_keys = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="_-. "), min_size=1,
                   max_size=8).filter(lambda key: key not in ("file", "allow_pickle"))


@PROPERTY
@given(st.data(), st.sampled_from([None, *range(1, 65)]), st.sampled_from([None, 1, 3]))
def test_random_arrays_load_in_a_documented_form_or_raise_one_line_data_error(data, size, channels):
    array = data.draw(numpy_arrays(), label="array")
    with tempfile.TemporaryDirectory() as folder:
        if data.draw(st.booleans(), label="as .npz"):
            path = Path(folder, "data.npz")
            arrays = data.draw(st.dictionaries(npz_keys, numpy_arrays(), max_size=2), label="others")
            arrays[data.draw(st.sampled_from(["x", "images"]) | npz_keys, label="key")] = array
            save = np.savez_compressed if data.draw(st.booleans(), label="compressed") else np.savez
            save(path, allow_pickle=True, **arrays)
            # The loader's documented choice: key "x", else "images", else the only array (else a DataError).
            array = arrays.get("x", arrays.get("images", next(iter(arrays.values())) if len(arrays) == 1 else None))
        else:
            path = Path(folder, "data.npy")
            np.save(path, array, allow_pickle=True)
        try:
            loaded = load_array_file(path, size, channels)
        except DataError as error:
            assert_one_line(error)
            event(f"DataError: {re.sub(r'-?[0-9][0-9.e+-]*', '#', str(error).replace(str(path), 'FILE'))[:40]}")
            return
    event(f"loaded {loaded.dtype} of {loaded.ndim} dimensions")
    assert array is not None, "chose among several arrays none of which is named x or images"
    assert array.dtype.kind in "uif", f"accepted {array.dtype}"
    if loaded.ndim == 2:  # (N, 2) points
        assert array.shape == loaded.shape and loaded.shape[1] == 2
        assert loaded.dtype == torch.float32 and bool(loaded.isfinite().all())
        return
    assert loaded.ndim == 4 and len(loaded) == len(array) >= 1
    assert loaded.shape[1] == (channels or loaded.shape[1]) and loaded.shape[1] in (1, 3)
    assert loaded.shape[2] == loaded.shape[3] == (size or loaded.shape[3])
    assert loaded.dtype in (torch.uint8, torch.float32)
    if loaded.dtype == torch.float32:
        assert bool(loaded.isfinite().all()) and -1 <= loaded.min() and loaded.max() <= 1


def npy_with_header(header: str, payload: bytes = b"") -> bytes:
    """A version 1.0 .npy file with the given header dictionary, padded as numpy pads it."""
    text = header + " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + payload


@pytest.mark.parametrize("name, data, message", [
    ("truncated.npy", None, r"could not read .* \(Failed to read all data"),
    ("bad_dict.npy", npy_with_header("{'descr': garbage}"), "could not read .*: re-save it"),
    ("bad_version.npy", b"\x93NUMPY\x09\x00" + b"\x10\x00" + b"{}" + b" " * 13 + b"\n", "could not read"),
    ("long_header.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr'", "could not read"),
    ("expression.npy", npy_with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (10**6, 10**6), }"),
     "could not read"),
    ("terabytes.npy",
     npy_with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 1000000), }", b"\0" * 64),
     r"could not load .* \(Unable to allocate .*\): its header may be corrupt"),
    ("negative.npy", npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4, 4), }", b"\0" * 64),
     "could not read"),
    ("not_zip.npz", b"PK\x03\x04" + b"\0" * 40, "could not read"),
    ("pickle.npy", b"\x80\x04\x95", "is not a NumPy .npy/.npz file"),
])
def test_broken_array_files_are_data_errors(tmp_path, name, data, message):
    if data is None:
        data = io.BytesIO()
        np.save(data, np.zeros((8, 16, 16), np.uint8))
        data = data.getvalue()[:300]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DataError, match=message) as caught:
        load_array_file(tmp_path / name, None, None)
    assert_one_line(caught.value)


def test_npz_with_a_member_that_is_not_an_array_is_a_data_error(tmp_path):
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as archive:
        archive.writestr("x", "images? no")
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x.npy", npy_with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (10000000, "
                                                  "10000000), }"))
    with pytest.raises(DataError, match=r"text.npz holds 'x', which is not a NumPy array"):
        load_array_file(tmp_path / "text.npz", None, None)
    with pytest.raises(DataError, match=r"could not load .*huge.npz \(Unable to allocate"):
        load_array_file(tmp_path / "huge.npz", None, None)


def test_points_beyond_float32_are_a_data_error(tmp_path):
    np.save(tmp_path / "far.npy", np.array([[1e300, 0.0], [0.0, 1.0]]))
    with pytest.raises(DataError, match=r"holds points beyond float32's range"):
        load_array_file(tmp_path / "far.npy", None, None)


def write_marker(path: str) -> None:
    """What the pickle payload below runs when unpickled."""
    Path(path).write_text("unpickled")


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return write_marker, (str(self.marker),)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_pickle_payload_is_refused_and_never_unpickled(tmp_path, suffix):
    marker = tmp_path / "marker"
    path = tmp_path / f"payload{suffix}"
    payload = np.array([Payload(marker), 1], dtype=object)
    if suffix == ".npy":
        np.save(path, payload, allow_pickle=True)
    else:
        np.savez(path, x=payload)

    with pytest.raises(DataError, match="holds pickled Python objects, which ganforge never loads") as caught:
        load_array_file(path, None, None)
    assert_one_line(caught.value)
    assert not marker.exists()

    loaded = np.load(path, allow_pickle=True)  # the payload is live: unpickling it writes the marker
    _ = loaded if suffix == ".npy" else loaded["x"]
    assert marker.exists()


def test_float_arrays_with_nan_or_out_of_range_ints_are_refused(tmp_path):
    for array, message in [
        (np.full((1, 2, 2), np.nan, np.float16), "NaN or infinite"),
        (np.full((1, 2, 2), -np.inf), "NaN or infinite"),
        (np.full((1, 2, 2), 256, np.uint16), "from 256 to 256"),
        (np.full((1, 2, 2), -1, np.int8), "from -1 to -1"),
        (np.zeros((1, 2, 2), np.complex64), "holds complex64 values"),
    ]:
        np.save(tmp_path / "a.npy", array)
        with pytest.raises(DataError, match=message):
            load_array_file(tmp_path / "a.npy", None, None)


def test_a_data_path_too_long_for_the_file_system_is_one_error():
    with pytest.raises(DataError, match="not a usable path") as caught:
        load_data(DataConfig(data="x" * 5000), None, None, 0, torch.device("cpu"))
    assert_one_line(caught.value)
