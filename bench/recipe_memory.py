"""Peak memory of one fine-tuning step of a zoo variant, measured, and scaled to a batch size.

Each batch size in `--batches` runs in a fresh process: the variant is built
as `mrrn finetune` builds it (new heads, a loss per stream plus the fused
output, `--optimizer` as the recipe's), then one training step runs on random
uint8 clips of `--frames` x `--size`^2; the process's peak resident memory
(`ru_maxrss`) is recorded. A line through the measured points gives the
memory per clip and the fixed part; the JSON printed holds both and the
extrapolation to `--target_batch`. The backbone starts at random
(`backbone_weights` is ignored): the memory does not depend on the values.
On CPU with TensorFlow this is host memory; an accelerator's memory use
differs (other kernels and allocator), so treat the extrapolation as an
order of magnitude there.

    python bench/recipe_memory.py                                  # mrrn_r34.paper, batches 1 and 2
    python bench/recipe_memory.py --variant mrrn_r18.paper --batches 1,2,3
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def step(variant: str, batch: int, frames: int, size: int, classes: int, jit: bool) -> dict:
    """One training step in this process; returns its peak RSS and timings."""
    import keras
    import numpy as np

    from mrrn_keras.finetune import _optimizer
    from mrrn_keras.finetune_config import FinetuneConfig
    from mrrn_keras.training import compile_for_streams, output_keys
    from mrrn_keras.zoo import load_mrrn

    start = time.time()
    model = load_mrrn(variant, weights=None, num_classes=classes, stream_outputs=True)
    config = FinetuneConfig(variant=variant, data_format="csv", data_dir=".", out_dir=".",
                            optimizer="sgd", momentum=0.9, weight_decay=1e-4)
    compile_for_streams(model, _optimizer(config, 1e-3), jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, frames, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, (batch,))
    y = {key: labels for key in output_keys(model)}
    built = time.time()
    model.train_on_batch(x, y)
    stepped = time.time()
    return {
        "batch": batch, "params": int(model.count_params()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "build_s": round(built - start, 1), "first_step_s": round(stepped - built, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="mrrn_r34.paper")
    parser.add_argument("--batches", default="1,2", help="comma-separated batch sizes")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument("--target_batch", type=int, default=30)
    parser.add_argument("--jit_compile", action="store_true", help="XLA-compile the step")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(step(args.variant, args.one, args.frames, args.size, args.classes,
                              args.jit_compile)))
        return
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        command = [sys.executable, __file__, "--one", str(batch), "--variant", args.variant,
                   "--frames", str(args.frames), "--size", str(args.size),
                   "--classes", str(args.classes)] + (["--jit_compile"] if args.jit_compile else [])
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    report = {"variant": args.variant, "frames": args.frames, "size": args.size,
              "jit_compile": args.jit_compile, "measured": rows}
    if len(rows) >= 2:
        import numpy as np

        per_clip, fixed = np.polyfit([r["batch"] for r in rows], [r["peak_rss_mb"] for r in rows], 1)
        report.update(per_clip_mb=round(float(per_clip)), fixed_mb=round(float(fixed)),
                      target_batch=args.target_batch,
                      target_gb=round(float(fixed + per_clip * args.target_batch) / 1024, 1))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
