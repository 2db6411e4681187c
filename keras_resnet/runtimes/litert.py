"""LiteRT (`model.tflite`, formerly TensorFlow Lite) run by the LiteRT interpreter with XNNPACK.

Export: Keras' own LiteRT export (`model.export(format="litert")`: TensorFlow's converter) with a dynamic
batch. int8: the converter's full-integer post-training quantization (int8 weights per output channel and
activations, ranges from the calibration images as its representative dataset), float32 input and output.
The interpreter (`ai-edge-litert`) resizes its input to each batch size it is given.
"""

import os

PACKAGES = {"ai_edge_litert": "ai-edge-litert"}  # the converter is TensorFlow's own
LOAD_PACKAGES = {"ai_edge_litert": "ai-edge-litert"}
INT8_PACKAGES = {}
FILES = ("model.tflite",)


def export(model, folder, *, input_shape, int8=False, calibration=None):
    import tensorflow as tf

    from keras_resnet.runtimes import keras_export

    options = {}
    if int8:
        def representative_dataset():
            for image in calibration:
                yield [image[None]]

        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative_dataset,
                   "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}}
    keras_export(model, folder, FILES, "litert", input_shape, **options)


def open_model(folder, threads=None):
    """float32 images [batch, H, W, C] -> the model's outputs, in a LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    from keras_resnet.runtimes import quiet_output

    interpreter = Interpreter(model_path=os.path.join(folder, FILES[0]), num_threads=int(threads or os.cpu_count()))
    source = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]
    shape = [None]

    def run(images):
        if list(images.shape) != shape[0]:
            with quiet_output():  # the first allocation says "INFO: Created TensorFlow Lite XNNPACK delegate"
                interpreter.resize_tensor_input(source, images.shape)
                interpreter.allocate_tensors()
            shape[0] = list(images.shape)
        interpreter.set_tensor(source, images)
        interpreter.invoke()
        return interpreter.get_tensor(output).copy()

    run.interpreter = interpreter
    return run


def load(folder, **kwargs):
    from keras_resnet.runtimes import load_runtime

    return load_runtime(folder, **kwargs)
