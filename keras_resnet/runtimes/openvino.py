"""OpenVINO IR (`model.xml` + `model.bin`, float32 weights) run by OpenVINO's CPU plugin.

Export: Keras' own OpenVINO export (`model.export(format="openvino")`: `openvino.convert_model` of the
TensorFlow function) with a dynamic batch. int8: NNCF's post-training quantization (`nncf.quantize`, the
"performance" preset: symmetric int8 weights per output channel and activations) calibrated on the
calibration images one at a time, saved with float32 weights where not quantized. The full bias
correction (`fast_bias_correction=False`) is used: on a digits ResNet-8 the fast one left 94.4% top-1
agreement with the float model, the full one 99.7% (ONNX Runtime and LiteRT: 99.7% too).

The CPU plugin computes in bfloat16 by default on CPUs with AVX-512 BF16 (this one): `open_model`
asks for float32 (`INFERENCE_PRECISION_HINT`) so that the float export gives the Keras model's
probabilities (the int8 layers stay int8 either way); `precision_hint="bf16"` trades that for speed.
"""

import os

PACKAGES = {"openvino": "openvino"}
LOAD_PACKAGES = {"openvino": "openvino"}
INT8_PACKAGES = {"nncf": "nncf"}
FILES = ("model.xml", "model.bin")


def export(model, folder, *, input_shape, int8=False, calibration=None):
    from keras_resnet.runtimes import keras_export

    keras_export(model, folder, FILES, "openvino", input_shape, quantize=quantize if int8 else None,
                 calibration=calibration)


def quantize(source, target, calibration):
    """NNCF post-training int8 quantization of the IR `source` into `target`."""
    import nncf
    import openvino

    model = openvino.Core().read_model(source)
    dataset = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))])
    quantized = nncf.quantize(model, dataset, subset_size=len(calibration), preset=nncf.QuantizationPreset.PERFORMANCE,
                              fast_bias_correction=False)
    openvino.save_model(quantized, target, compress_to_fp16=False)


def open_model(folder, threads=None, precision_hint="f32"):
    """float32 images [batch, H, W, C] -> the model's outputs, compiled for the CPU."""
    import openvino

    config = {"INFERENCE_PRECISION_HINT": precision_hint}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = openvino.Core().compile_model(os.path.join(folder, FILES[0]), "CPU", config)
    request = compiled.create_infer_request()

    def run(images):
        return request.infer({0: images})[0].copy()

    run.compiled = compiled
    return run


def load(folder, **kwargs):
    from keras_resnet.runtimes import load_runtime

    return load_runtime(folder, **kwargs)
