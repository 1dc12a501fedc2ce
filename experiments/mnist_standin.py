r"""Wall time of the README's MNIST search, on a stand-in where MNIST cannot be fetched.

The README's first example is ``python -m nas_tf.run --space=cnn --dataset=mnist ...``.
On a machine without network (this project's) MNIST cannot be downloaded, so
this script runs that exact command line in-process through the real TFDS path
(``tfds.builder("mnist")``: its real features, 28x28x1 images, 10 classes, and a
``dataset_info.json`` declaring MNIST's 60,000 / 10,000 train / test split),
with ``tfds.testing.mock_data`` serving the examples: images of the digits
0-9 drawn with Pillow's built-in font at random sizes, offsets and rotations,
plus noise. Wall time depends on the image count and shape, not on what the
pixels show, so the time transfers to real MNIST; the accuracy does not
(one font is easier than handwriting) and is reported only as a check that
the children learn.

  python experiments/mnist_standin.py --out=experiments/results/mnist_search.md -- \
      --cnn_train_subset=5000 --cnn_num_layers=4 --cnn_width_multiplier=0.5 \
      --child_epochs=2 --max_children=10
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def draw_digit(index: int, seed: int) -> tuple[bytes, int]:
    """A 28x28 grayscale PNG of a digit (label index % 10), jittered deterministically."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng([seed, index])
    label = index % 10
    canvas = Image.new("L", (56, 56), 0)
    font = ImageFont.load_default(size=int(rng.integers(30, 46)))
    draw = ImageDraw.Draw(canvas)
    x, y = 28 + rng.integers(-6, 7), 28 + rng.integers(-6, 7)
    draw.text((int(x), int(y)), str(label), fill=255, font=font, anchor="mm",
              stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(-20, 20)), resample=Image.BILINEAR)
    small = np.asarray(canvas.resize((28, 28), Image.LANCZOS), np.float32)
    small = np.clip(small + rng.normal(0, 12, small.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, format="PNG")
    return buf.getvalue(), label


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="Markdown file to append the result to.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("cli_args", nargs="*", help="after --: flags of nas_tf.run")
    args = parser.parse_args()

    import tensorflow as tf
    import tfds_fixtures
    from absl import app

    from nas_tf import run

    tmp = tempfile.mkdtemp(prefix="mnist_standin_")
    tfds_fixtures.write_metadata(tmp, "mnist", {"train": 60000, "test": 10000})
    run_dir = os.path.join(tmp, "run")

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        offset = 0 if str(split).startswith("train") else 1_000_000
        n = 60000 if offset == 0 else 10000

        def gen():
            for i in range(n):
                png, label = draw_digit(offset + i, args.seed)
                yield {"image": png, "label": label}

        return tf.data.Dataset.from_generator(gen, output_signature={
            "image": tf.TensorSpec((), tf.string), "label": tf.TensorSpec((), tf.int64)})

    argv = ["run", "--space=cnn", "--dataset=mnist", f"--data_dir={tmp}",
            f"--run_dir={run_dir}", f"--seed={args.seed}", *args.cli_args]
    code = 0
    t0 = time.time()
    with tfds_fixtures.mock(tmp, 1, as_dataset_fn=as_dataset):
        try:
            app.run(run.main, argv=argv)
        except SystemExit as e:
            code = e.code
    seconds = time.time() - t0
    summary = json.loads(Path(run_dir, "summary.json").read_text())
    best = summary["best_reward"]
    power = 3.0
    for a in args.cli_args:
        if a.startswith("--cnn_reward_power="):
            power = float(a.split("=", 1)[1])
    acc = best ** (1.0 / power) if best is not None else float("nan")
    load = os.getloadavg()
    lines = [
        "",
        f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"`python -m nas_tf.run --space=cnn --dataset=mnist {' '.join(args.cli_args)}`",
        "",
        f"Stand-in data (drawn digits, real TFDS mnist path), exit code {code}. "
        f"Load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 CPU cores).",
        "",
        "| children trained | failed | wall time (s) | best reward | best validation accuracy |",
        "|---:|---:|---:|---:|---:|",
        f"| {summary['children_trained']} | {summary['children_failed']} | {seconds:.0f} | "
        f"{best:.4f} | {acc:.4f} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
