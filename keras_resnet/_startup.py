"""TensorFlow's start-up without its log noise: imported first by the package.

TensorFlow 2.21 prints about seven lines while it loads and probes for GPUs, whatever
TF_CPP_MIN_LOG_LEVEL says (absl's "All log messages before absl::InitializeLog()" notice, oneDNN's
note, and the CUDA probes of its GPU build on machines without a GPU). `import_tensorflow_quietly`
imports TensorFlow and lists its devices with stderr captured, then replays every captured line
that is not one of those (`STARTUP_NOISE`); if the import fails, it replays everything. It does
nothing when TensorFlow is already imported or Keras runs on another backend.
"""

import os
import re
import sys
import tempfile

STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+\s+\d+ (port|cudart_stub|cuda_platform|cuda_dnn|cuda_fft|cuda_blas|cuda_executor|"
    r"cpu_feature_guard|cuda_diagnostics)\.cc:\d+\].*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."
    r"|.*TF-TRT Warning.*)$"
)


def import_tensorflow_quietly():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): import as usual
        return
    failed = True
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe prints here
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines()
            kept = lines if failed else [line for line in lines if not STARTUP_NOISE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
