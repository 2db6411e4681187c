"""ONNX (`model.onnx`, opset of tf2onnx's choice) run by ONNX Runtime on the CPU.

Export: Keras' own ONNX export (`model.export(format="onnx")`, tf2onnx on the TensorFlow backend) with a
dynamic batch. int8: ONNX Runtime's post-training static quantization after its pre-processing (shape
inference, batch norm folded into the convs): QDQ format, weights int8 per output channel, activations
uint8 (the u8 x s8 products that AVX-512 VNNI and AVX-VNNI run), MinMax ranges from the calibration images.
"""

import os

PACKAGES = {"onnx": "onnx", "tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime"}
LOAD_PACKAGES = {"onnxruntime": "onnxruntime"}
INT8_PACKAGES = {}
FILES = ("model.onnx",)
CALIBRATION_BATCH = 16


def export(model, folder, *, input_shape, int8=False, calibration=None):
    from keras_resnet.runtimes import keras_export

    keras_export(model, folder, FILES, "onnx", input_shape, quantize=quantize if int8 else None,
                 calibration=calibration)


def quantize(source, target, calibration):
    """Static int8 quantization of the float ONNX file `source` into `target`."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, \
        quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = source + ".prepared.onnx"
    quant_pre_process(source, prepared, skip_symbolic_shape=True)
    name = onnxruntime.InferenceSession(prepared, providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: calibration[i:i + CALIBRATION_BATCH]}
                                 for i in range(0, len(calibration), CALIBRATION_BATCH)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(prepared, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    os.remove(prepared)


def open_model(folder, threads=None):
    """float32 images [batch, H, W, C] -> the model's outputs, in an ONNX Runtime session (CPU)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    session = onnxruntime.InferenceSession(os.path.join(folder, FILES[0]), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(images):
        return session.run(None, {name: images})[0]

    run.session = session
    return run


def load(folder, **kwargs):
    from keras_resnet.runtimes import load_runtime

    return load_runtime(folder, **kwargs)
