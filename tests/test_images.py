"""Decoding with limits: sizes read from headers, decompression bombs refused before decoding, any
format to any channel count."""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_resnet import images


def encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF"])
def test_header_size_is_height_then_width(rng, fmt):
    array = rng.integers(0, 256, (13, 29, 3)).astype("uint8")
    assert images.header_size(encode(array, fmt)).numpy().tolist() == [13, 29]
    assert images.header_size(b"not an image").numpy().tolist() == [-1, -1]


def test_bmp_stored_top_down_has_a_negative_height():
    header = b"BM" + b"\0" * 16 + struct.pack("<ii", 7, -5) + b"\0" * 30
    assert images.header_size(header).numpy().tolist() == [5, 7]


def _png_header(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\0" * 64


def _bombs(rng):
    """Files whose headers claim 20000x20000 pixels (a few hundred bytes each: nothing to decode)."""
    jpeg = bytearray(encode(rng.integers(0, 256, (8, 8, 3)).astype("uint8"), "JPEG"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)
    gif = b"GIF89a" + struct.pack("<HH", 20000, 20000) + b"\0" * 64
    bmp = b"BM" + b"\0" * 16 + struct.pack("<ii", 20000, 20000) + b"\0" * 64
    return {"PNG": _png_header(20000, 20000), "JPEG": bytes(jpeg), "GIF": gif, "BMP": bmp}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_decompression_bombs_are_refused_from_the_header(rng, fmt):
    bomb = _bombs(rng)[fmt]
    assert images.header_size(bomb).numpy().tolist() == [20000, 20000]
    # The pixel limit fails first: a decoder would have failed on these truncated files otherwise.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"pixel limit \(max_pixels=50000000\)"):
        images.decode(bomb, 3)
    assert images.check(bomb, 3) == "20000x20000 pixels, over the limit max_pixels=50000000"
    assert "over the limit max_pixels=1000" in images.check(encode(np.zeros((40, 40, 3), "uint8"), "PNG"), 3, 1000)


@pytest.mark.parametrize("fmt, source", [(fmt, source) for fmt in ("PNG", "JPEG", "BMP", "GIF")
                                         for source in ("rgb", "gray")] + [("PNG", "rgba")])  # alpha: PNG only
def test_any_format_decodes_to_any_channel_count(rng, fmt, source):
    shape = {"rgb": (9, 11, 3), "gray": (9, 11), "rgba": (9, 11, 4)}[source]
    array = rng.integers(0, 256, shape).astype("uint8")
    encoded = encode(array, fmt)
    for channels in (1, 3):
        decoded = images.decode(encoded, channels).numpy()
        assert decoded.shape == (9, 11, channels) and decoded.dtype == np.uint8
    if fmt in ("PNG", "BMP") and source == "rgb":  # lossless: the values themselves
        np.testing.assert_array_equal(images.decode(encoded, 3).numpy(), array)
        gray = np.round(array.astype(float) @ [0.2989, 0.587, 0.114])
        np.testing.assert_allclose(images.decode(encoded, 1).numpy()[..., 0], gray, atol=1)
    if fmt == "PNG" and source == "gray":
        np.testing.assert_array_equal(images.decode(encoded, 3).numpy(), np.repeat(array[..., None], 3, -1))


def test_check_names_what_is_wrong():
    assert images.check(b"plain text", 3) == "not a JPEG, PNG, BMP or GIF image"
    assert images.check(b"\x89PNG\r\n\x1a\n" + b"garbage", 3).startswith("cannot be decoded")
    assert images.check(encode(np.zeros((4, 5, 3), "uint8"), "PNG"), 1) is None


def test_decode_and_resize_in_a_graph(rng):
    files = tf.constant([encode(rng.integers(0, 256, (20, 30, 3)).astype("uint8"), "BMP"),
                         encode(rng.integers(0, 256, (31, 7)).astype("uint8"), "GIF")])
    resize = tf.function(lambda batch: tf.map_fn(lambda e: images.decode_and_resize(e, (8, 6), 1), batch,
                                                 fn_output_signature=tf.TensorSpec([8, 6, 1], tf.uint8)))
    assert resize(files).shape == (2, 8, 6, 1)
