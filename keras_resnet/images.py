"""Decoding encoded images with limits: the one place that the folder datasets, the exported serving
signatures and `scripts/predict.py` decode and resize images.

- A pixel budget (`max_pixels`, default `DEFAULT_MAX_PIXELS`) is checked against the size in the
  file's header *before* decoding, so a small file that claims 20000x20000 pixels (a
  decompression bomb) is refused without allocating its pixels.
- Any of JPEG, PNG, BMP and GIF (first frame) decodes to any channel count: colour images for a
  grayscale model are converted with `tf.image.rgb_to_grayscale`, grayscale images for a colour
  model are repeated over three channels, and alpha is dropped. (TensorFlow's own BMP and GIF
  decoders refuse `channels=1`.)
- The same TensorFlow ops run in graphs (SavedModel signatures, tf.data) and eagerly (`check`),
  so what a check accepts is exactly what the pipelines can decode.
"""

import tensorflow as tf

# 50 megapixels: larger than any common camera's JPEG (48 MP phones), about 150 MB decoded as RGB.
DEFAULT_MAX_PIXELS = 50_000_000
FORMATS = ("JPEG", "PNG", "BMP", "GIF")
SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _integer_at(encoded, offset, count, big_endian):
    """The unsigned integer in `count` bytes of `encoded` at `offset` (zeros past the end), as int64."""
    padded = tf.strings.join([encoded, tf.constant(b"\0" * 32)])
    raw = tf.cast(tf.reshape(tf.io.decode_raw(tf.strings.substr(padded, offset, count), tf.uint8), [count]), tf.int64)
    weights = [256**i for i in range(count)]
    return tf.reduce_sum(raw * tf.constant(weights[::-1] if big_endian else weights, tf.int64))


def header_size(encoded):
    """(height, width) as int64 from the header of a JPEG, PNG, BMP or GIF file, without decoding it;
    (-1, -1) for anything else (the decoder then names the format problem)."""
    encoded = tf.convert_to_tensor(encoded, tf.string)
    start = tf.strings.substr(tf.strings.join([encoded, tf.constant(b"\0" * 8)]), 0, 8)

    def png():  # IHDR: width and height, big-endian, at bytes 16 and 20
        return tf.stack([_integer_at(encoded, 20, 4, True), _integer_at(encoded, 16, 4, True)])

    def gif():  # logical screen: width and height, little-endian 16-bit, at bytes 6 and 8
        return tf.stack([_integer_at(encoded, 8, 2, False), _integer_at(encoded, 6, 2, False)])

    def bmp():  # BITMAPINFOHEADER: width and height, little-endian signed 32-bit, at bytes 18 and 22
        def signed(offset):  # a negative height means rows stored top-down
            value = _integer_at(encoded, offset, 4, False)
            return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

        return tf.stack([signed(22), signed(18)])

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64)

    def unknown():
        return tf.constant([-1, -1], tf.int64)

    first2, first3 = tf.strings.substr(start, 0, 2), tf.strings.substr(start, 0, 3)
    return tf.case(
        [
            (tf.equal(start, b"\x89PNG\r\n\x1a\n"), png),
            (tf.equal(first3, b"GIF"), gif),
            (tf.equal(first2, b"BM"), bmp),
            (tf.equal(first3, b"\xff\xd8\xff"), jpeg),
        ],
        default=unknown,
        exclusive=False,
    )


def _to_channels(image, channels):
    """uint8 [H, W, any] -> [H, W, channels]: alpha dropped, colour <-> grayscale converted."""
    native = tf.shape(image)[-1]
    image = tf.cond(tf.logical_or(tf.equal(native, 2), tf.equal(native, 4)), lambda: image[..., :-1], lambda: image)
    colour = tf.shape(image)[-1]
    if channels == 1:
        image = tf.cond(
            tf.equal(colour, 3),
            lambda: tf.cast(tf.clip_by_value(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), 0, 255),
                            tf.uint8),
            lambda: image[..., :1],
        )
    else:
        image = tf.cond(tf.equal(colour, 1), lambda: tf.tile(image, [1, 1, channels]), lambda: image[..., :channels])
    image.set_shape([None, None, channels])
    return image


def decode(encoded, channels=3, max_pixels=DEFAULT_MAX_PIXELS):
    """One encoded JPEG/PNG/BMP/GIF string -> uint8 [H, W, channels], refusing more than `max_pixels`.

    Fails with tf.errors.InvalidArgumentError (naming the limit) for an image over the budget, before
    its pixels are decoded, and with TensorFlow's decoder message for bytes that are not an image.
    """
    size = header_size(encoded)
    pixels = size[0] * size[1]
    within = tf.debugging.assert_less_equal(
        pixels, tf.constant(int(max_pixels), tf.int64),
        message=f"image is larger than the pixel limit (max_pixels={int(max_pixels)}); height, width:")
    with tf.control_dependencies([within]):
        image = tf.io.decode_image(encoded, channels=0, expand_animations=False)
    return _to_channels(image, channels)


def resize_images(images, size):
    """Antialiased bilinear resize of raw 0-255 images to `size` (height, width), as float32.

    The one resize of the package: the folder datasets and the exported serving signatures use
    it, so a served image is resized exactly as the training images were.
    """
    return tf.image.resize(tf.cast(images, tf.float32), size, antialias=True)


def resize_and_centre_crop(images, transform):
    """torchvision's `Resize(resize)` then `CenterCrop(crop)` on raw 0-255 images, as float32.

    `transform`: {"resize": shorter side, "crop": (height, width), "interpolation": "bilinear" or
    "bicubic"} (`specs.eval_transform_for`). One image [H, W, C] or a batch [N, H, W, C] of one size.
    The arithmetic is torchvision's (transforms.functional): the longer side becomes
    int(resize * long / short), the crop starts at round((size - crop) / 2) with Python's round half to
    even (tf.round's too); the resize is antialiased like torchvision's and PIL's (`antialias=True`).
    """
    images = tf.cast(images, tf.float32)
    resize, (crop_height, crop_width) = int(transform["resize"]), transform["crop"]
    shape = tf.shape(images)
    height, width = shape[-3], shape[-2]
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    new_long = tf.cast(tf.cast(resize * long, tf.float64) / tf.cast(short, tf.float64), tf.int32)  # int(): floor
    portrait = width <= height
    new_height = tf.where(portrait, new_long, resize)
    new_width = tf.where(portrait, resize, new_long)
    resized = tf.image.resize(images, tf.stack([new_height, new_width]), method=transform["interpolation"],
                              antialias=True)

    def start(size, crop):
        return tf.cast(tf.round(tf.cast(size - crop, tf.float64) / 2.0), tf.int32)

    top, left = start(new_height, crop_height), start(new_width, crop_width)
    cropped = resized[..., top:top + crop_height, left:left + crop_width, :]
    static = [crop_height, crop_width, images.shape[-1]]
    cropped.set_shape(images.shape[:-3].concatenate(static) if images.shape.rank else None)
    return cropped


def decode_and_resize(encoded, size, channels=3, max_pixels=DEFAULT_MAX_PIXELS, transform=None):
    """One encoded image -> uint8 image of `size` (height, width) with `channels` channels.

    `transform` (a resolved evaluation transform whose crop is `size`): resize the shorter side and
    centre-crop (`resize_and_centre_crop`) instead of resizing the whole image to `size`. Either way
    the pixels are rounded to uint8, as PIL's resize gives them.
    """
    image = decode(encoded, channels, max_pixels)
    image = resize_images(image, size) if transform is None else resize_and_centre_crop(image, transform)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def check(encoded, channels=3, max_pixels=DEFAULT_MAX_PIXELS):
    """None when `encoded` decodes as the pipelines will decode it, else the reason in a few words."""
    try:
        height, width = (int(v) for v in header_size(encoded).numpy())
        if height * width > max_pixels:
            return f"{width}x{height} pixels, over the limit max_pixels={max_pixels}"
        image = decode(encoded, channels, max_pixels)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        message = error.message.split("\n")[0].split("}}")[-1].replace("[Op:DecodeImage]", "").strip()
        if "Unknown image file format" in message:
            return "not a JPEG, PNG, BMP or GIF image"
        return f"cannot be decoded ({message})"
    if image.shape[0] == 0 or image.shape[1] == 0:
        return "has no pixels"
    return None
