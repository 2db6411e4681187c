"""ResNet-50 training and inference images/s on a GPU machine that has JAX but no TensorFlow, in one command.

    python scripts/gpu_benchmark.py --build wheelhouse        # here: keras and this package as wheels (~4 MiB)
    python scripts/gpu_benchmark.py --wheelhouse wheelhouse   # there (this repository and wheelhouse/ copied)

--build repacks Keras and the pure-Python packages it imports that JAX does not bring, and builds this
package (pip wheel --no-deps), into a wheelhouse (keras_resnet.wheelhouse). Without --build the script
unpacks the wheelhouse into --target (Keras and this package always, the others only where missing),
then runs scripts/benchmark.py with that folder first on PYTHONPATH, KERAS_BACKEND=jax, --precision
mixed_bfloat16 and --jit-compile (XLA) on synthetic data: ResNet-50 at 224x224, training and inference
images/s, the device's name and peak memory, written to --json. Only the standard library is imported
until then, so the script starts on a machine without Keras.
"""

import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    """keras_resnet/<name>.py by its path: importing the package would import Keras, not installed yet there."""
    spec = importlib.util.spec_from_file_location(f"_keras_resnet_{name}", os.path.join(ROOT, "keras_resnet",
                                                                                        f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cli = _load("cli")


def build_parser():
    parser = cli.ArgumentParser(description=__doc__)
    parser.add_argument("--build", help="build the wheelhouse in this folder and stop (where keras is installed)")
    parser.add_argument("--wheelhouse", default="wheelhouse", help="the wheels to install from (default: wheelhouse)")
    parser.add_argument("--target", help="folder to unpack them into (default: <wheelhouse>/site)")
    parser.add_argument("--model", default="resnet50", help="registered model (default: resnet50)")
    parser.add_argument("--input-size", type=int, default=224, help="square input size (default: 224)")
    parser.add_argument("--batch-size", type=int, default=256, help="batch size (default: 256)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first, XLA compiles here (default: 5)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps (default: 20)")
    parser.add_argument("--json", default="gpu_benchmark.json", help="results file (default: gpu_benchmark.json)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("input_size", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={getattr(args, name)}")
    if args.warmup < 1:  # the first step compiles: it must not be timed
        raise ValueError(f"warmup must be at least 1 (XLA compiles in the first step). Received: warmup={args.warmup}")
    wheelhouse = _load("wheelhouse")
    if args.build:
        paths = wheelhouse.build(args.build, ROOT)
        size = sum(os.path.getsize(p) for p in paths)
        print(f"wheelhouse {args.build}: {len(paths)} wheels, {size / 2**20:.1f} MiB")
        for path in paths:
            print(f"  {os.path.basename(path)}")
        print(f"there: python scripts/gpu_benchmark.py --wheelhouse {args.build}")
        return
    target = os.path.abspath(args.target or os.path.join(args.wheelhouse, "site"))
    unpacked = wheelhouse.install(args.wheelhouse, target)
    print(f"unpacked into {target}: {', '.join(unpacked)}", flush=True)
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "PYTHONPATH": os.pathsep.join(p for p in (target, os.environ.get("PYTHONPATH")) if p)}
    command = [sys.executable, os.path.join(ROOT, "scripts", "benchmark.py"), "--model", args.model,
               "--input-size", str(args.input_size), "--batch-size", str(args.batch_size), "--precision",
               "mixed_bfloat16", "--jit-compile", "--warmup", str(args.warmup), "--repeats", str(args.repeats),
               "--json", args.json]
    print("running: KERAS_BACKEND=jax " + " ".join(command[1:]), flush=True)
    done = subprocess.run(command, env=env)
    if done.returncode != 0:
        raise cli.ReportedError(f"the benchmark failed (exit {done.returncode}); its output is above")
    with open(args.json) as f:
        results = json.load(f)
    ours = results["ours"]
    print(f"{args.model} {args.input_size}x{args.input_size}, mixed_bfloat16, XLA, batch {args.batch_size} on "
          f"{ours.get('device') or 'the CPU'} (JAX): training {ours['train_images_per_sec']:,.0f} images/s, "
          f"inference {ours['infer_images_per_sec']:,.0f} images/s")


if __name__ == "__main__":
    cli.run_cli(main)
