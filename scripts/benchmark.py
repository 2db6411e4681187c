"""Benchmarks as tables: training and inference images/s, keras.applications side by side, the
exported SavedModel with and without folded batch norm, the input pipeline against what training
consumes, step time against multiply-adds from ResNet-18 to 152, every runtime (Keras float32 and
mixed_bfloat16, SavedModel, ONNX Runtime, OpenVINO and LiteRT in float32 and int8), and peak memory.

    python scripts/benchmark.py                                        # ResNet-50, 224x224, batch 32, fp32
    python scripts/benchmark.py --compare keras-applications --json bench.json
    python scripts/benchmark.py --serving --pipeline --depth-scaling    # the other measurements
    python scripts/benchmark.py --all --rounds 3                       # everything but --runtimes
    python scripts/benchmark.py --runtimes --no-throughput --rounds 3   # every runtime, float32 and int8
    KERAS_BACKEND=jax python scripts/benchmark.py --precision mixed_bfloat16 --batch-size 256 --jit-compile

Figures are medians of --repeats timed steps after --warmup steps (and, with --rounds N, the median over
N turns of the compared models); comparisons are ratios of two figures taken in this run (the machines are
shared and noisy: compare ratios, not absolutes).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DEPTH_MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet50", help="registered model (default: resnet50)")
    parser.add_argument("--input-size", type=int, default=224, help="square input size (default: 224)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="float32, or a Keras mixed-precision policy (default: float32)")
    parser.add_argument("--jit-compile", action="store_true", help="XLA")
    parser.add_argument("--strategy", default="default",
                        help="tf.distribute strategy, TensorFlow backend (default: default)")
    parser.add_argument("--compare", choices=["keras-applications"], help="measure keras.applications too")
    parser.add_argument("--serving", action="store_true", help="SavedModel latency, folded and unfolded BN")
    parser.add_argument("--runtimes", action="store_true",
                        help="Keras float32 and mixed_bfloat16, SavedModel, ONNX Runtime, OpenVINO, LiteRT (float32, "
                             "int8): images/s at batch 1 and --batch-size, in turn")
    parser.add_argument("--calibration-images", type=int, default=64,
                        help="random images that calibrate the --runtimes int8 exports (default: 64)")
    parser.add_argument("--pipeline", action="store_true", help="input pipeline images/s against training")
    parser.add_argument("--depth-scaling", action="store_true", help="step time against multiply-adds, 18-152")
    parser.add_argument("--depth-input-size", type=int, default=112,
                        help="input size of --depth-scaling (default: 112)")
    parser.add_argument("--all", action="store_true", help="every measurement but --runtimes")
    parser.add_argument("--no-throughput", action="store_true", help="skip the --model throughput measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (default: 5)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the compared models in turn this many times; report each one's median "
                             "(default: 1)")
    parser.add_argument("--json", help="write the results as JSON here")
    return parser


def parse_args(argv):
    args = build_parser().parse_args(argv)
    for name in ("input_size", "batch_size", "repeats", "rounds", "depth_input_size", "calibration_images"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={getattr(args, name)}")
    if args.warmup < 0:
        raise ValueError(f"warmup must be >= 0. Received: warmup={args.warmup}")
    if args.all:
        args.compare = args.compare or "keras-applications"
        args.serving = args.pipeline = args.depth_scaling = True
    if args.json:
        from keras_resnet.files import check_output_file

        check_output_file(args.json, "json")
    if args.compare and args.model not in ("resnet50", "resnet101", "resnet152"):
        raise ValueError(f"--compare keras-applications needs model resnet50, resnet101 or resnet152. "
                         f"Received: model={args.model!r}")
    return args


def table(rows, columns):
    from keras_resnet.analysis import markdown_table

    def fmt(value):
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    return markdown_table(rows, columns, {c: fmt for c in columns})


def throughput(args, results, shape, timing):
    """Training and inference images/s of --model, and of keras.applications with --compare."""
    from keras_resnet import benchmark, registry

    builds = {"ours": lambda: registry.get_model(args.model, input_shape=shape)}
    if args.compare:
        depth = int(args.model[len("resnet"):])
        builds["keras_applications"] = benchmark.keras_applications_builder(depth, shape, 1000)
    results.update(benchmark.measure_in_turn(builds, rounds=args.rounds, **timing))
    rows = [{"model": f"ours: {args.model}", **results["ours"]}]
    if args.compare:
        rows.append({"model": f"keras.applications.ResNet{depth}", **results["keras_applications"]})
        ours, theirs = results["ours"], results["keras_applications"]
        results["ratios"] = {"train": ours["train_images_per_sec"] / theirs["train_images_per_sec"],
                             "infer": ours["infer_images_per_sec"] / theirs["infer_images_per_sec"]}
    for row in rows:  # the process's peak so far: each model is measured after the previous ones
        row["peak RSS GiB"] = row["peak_rss_bytes"] / 2**30
        if row.get("device_peak_bytes"):
            row["device peak GiB"] = row["device_peak_bytes"] / 2**30
    print("## Throughput (images/s)\n")
    print(table(rows, ["model", "train_images_per_sec", "infer_images_per_sec", "peak RSS GiB"]
                + (["device peak GiB"] if "device peak GiB" in rows[0] else [])))
    if "ratios" in results:
        print(f"\nours / keras.applications: training {results['ratios']['train']:.3f}x, "
              f"inference {results['ratios']['infer']:.3f}x")


def runtimes_table(args, results, shape):
    """Every runtime in turn (keras_resnet.runtimes.measure): images/s at batch 1 and --batch-size."""
    from keras_resnet import registry
    from keras_resnet.runtimes import measure

    batches = sorted({1, args.batch_size})
    measured = measure.measure_runtimes(lambda: registry.get_model(args.model, input_shape=shape), input_shape=shape,
                                        batch_sizes=batches, rounds=args.rounds, warmup=args.warmup,
                                        repeats=args.repeats, calibration_images=args.calibration_images)
    base = measured["SavedModel"][f"images_per_sec_batch{batches[-1]}"]
    rows = []
    for name, figures in measured.items():
        row = {"runtime": name, "file MiB": figures["file_bytes"] / 2**20 if "file_bytes" in figures else "-"}
        for batch in batches:
            row[f"batch {batch} ms"] = figures[f"latency_batch{batch}_s"] * 1000
            row[f"batch {batch} images/s"] = figures[f"images_per_sec_batch{batch}"]
        row[f"x SavedModel (batch {batches[-1]})"] = figures[f"images_per_sec_batch{batches[-1]}"] / base
        row[f"train images/s (batch {batches[-1]})"] = figures.get("train_images_per_sec", "-")
        row["peak RSS GiB"] = figures["peak_rss_bytes"] / 2**30
        row["added GiB"] = figures["peak_added_bytes"] / 2**30 if "peak_added_bytes" in figures else "-"
        rows.append(row)
    ratios = measure.summary(measured, batches[-1])
    results["runtimes"] = {"figures": measured, "ratios": ratios}
    print(f"\n## Runtimes ({args.model}, {shape[0]}x{shape[1]}, medians of {args.rounds} round(s) in turn)\n")
    print(table(rows, list(rows[0])))
    print("\nRatios (the median over the rounds of each round's ratio):")
    for name, ratio in ratios.items():
        print(f"- {name}: {ratio:.2f}x")


def main(argv=None):
    args = parse_args(argv)
    import keras

    from keras_resnet import analysis, benchmark, registry

    entry = registry.get_entry(args.model)
    channels = entry.default_input_shape[-1]
    shape = (args.input_size, args.input_size, channels)
    strategy = None
    if keras.backend.backend() == "tensorflow" and args.strategy != "default":
        from keras_resnet import distribute

        strategy = distribute.get_strategy(args.strategy)
    settings = {"model": args.model, "input_size": args.input_size, "batch_size": args.batch_size,
                "precision": args.precision, "jit_compile": args.jit_compile, "strategy": args.strategy,
                "warmup": args.warmup, "repeats": args.repeats, "rounds": args.rounds, **benchmark.env_summary()}
    timing = dict(batch_size=args.batch_size, input_shape=shape, precision=args.precision,
                  jit_compile=args.jit_compile, strategy=strategy, warmup=args.warmup, repeats=args.repeats)
    results = {"settings": settings}
    print(f"settings: {json.dumps(settings)}\n")

    if not args.no_throughput:
        throughput(args, results, shape, timing)
    if args.serving:
        model = registry.get_model(args.model, input_shape=shape)
        serving = {fold: benchmark.measure_saved_model(model, fold=fold, warmup=args.warmup, repeats=args.repeats)
                   for fold in (False, True)}
        results["serving"] = {"unfolded": serving[False], "folded": serving[True]}
        rows = []
        for batch in serving[False]:
            plain, folded = serving[False][batch], serving[True][batch]
            rows.append({"batch": batch, "unfolded latency s": plain["latency_s"],
                         "folded latency s": folded["latency_s"], "unfolded images/s": plain["images_per_sec"],
                         "folded images/s": folded["images_per_sec"],
                         "speed-up": plain["latency_s"] / folded["latency_s"]})
        print("\n## Exported SavedModel, serving_default\n")
        print(table(rows, list(rows[0])))

    if args.runtimes:
        runtimes_table(args, results, shape)

    if args.pipeline:
        from keras_resnet import data

        rows = []
        for name, dataset in (("digits (8x8x1)", data.load_digits_dataset()),
                              ("CIFAR-sized (32x32x3)", benchmark.synthetic_dataset("cifar-like", 32, 3))):
            size = dataset.image_shape[0]
            delivered = benchmark.measure_pipeline(dataset, batch_size=128, image_size=size, augment="cifar",
                                                   flip=dataset.flip)
            benchmark.progress(f"ResNet-20 training on {name} ...")
            consumed = benchmark.measure_model(
                lambda: registry.get_model("resnet20", input_shape=dataset.image_shape, num_classes=10),
                batch_size=128, input_shape=dataset.image_shape, warmup=args.warmup,
                repeats=args.repeats, infer=False)["train_images_per_sec"]
            rows.append({"data": name, "pipeline images/s": delivered, "ResNet-20 trains images/s": consumed,
                         "headroom": delivered / consumed})
        results["pipeline"] = rows
        print("\n## Input pipeline (augmentation on, batch 128) against ResNet-20 training\n")
        print(table(rows, list(rows[0])))

    if args.depth_scaling:
        size = args.depth_input_size
        shape_d = (size, size, 3)
        measured = benchmark.measure_in_turn(
            {name: lambda n=name: registry.get_model(n, input_shape=shape_d) for name in DEPTH_MODELS},
            rounds=args.rounds, **{**timing, "input_shape": shape_d, "infer": False})
        rows = []
        for name in DEPTH_MODELS:
            macs = analysis.count_macs(registry.get_model(name, input_shape=shape_d))
            keras.backend.clear_session()
            rows.append({"model": name, "macs": macs, "train step s": measured[name]["train_step_s"]})
        base_macs, base_step = rows[0]["macs"], rows[0]["train step s"]
        for row in rows:
            row["macs ratio"] = row["macs"] / base_macs
            row["time ratio"] = row["train step s"] / base_step
            row["time / macs"] = row["time ratio"] / row["macs ratio"]
            row["macs"] = analysis.format_count(row["macs"])
        results["depth_scaling"] = rows
        print(f"\n## Training step time against multiply-adds ({size}x{size}, batch {args.batch_size})\n")
        print(table(rows, ["model", "macs", "train step s", "macs ratio", "time ratio", "time / macs"]))

    results["peak_memory"] = benchmark.peak_memory()
    print(f"\npeak memory: {json.dumps(results['peak_memory'])}")
    if args.json:
        from keras_resnet.files import atomic_write

        atomic_write(args.json, json.dumps(results, indent=2, default=str) + "\n")
        print(f"results in {args.json}")


if __name__ == "__main__":
    run_cli(main)
