r"""Benchmark: child-training throughput of nas_tf vs a plain ``model.fit``.

For a few random children of the CNN space (Zoph & Le 2017, arXiv:1611.01578,
§4.1), trains the same Keras model (same builder, same seed, same tf.data
pipeline, same optimizer and schedule) with

* ``plain``: ``model.compile(SGD, loss, metrics=["accuracy"])`` with Keras'
  defaults, then ``model.fit(train_ds, epochs, steps_per_epoch)``;
* ``nas_tf``: :func:`cnn_space.train.train_child` with the default
  :class:`cnn_space.train.CnnSearchConfig` settings;
* ``nas_tf+xla`` / ``nas_tf+spe8``: the same with ``jit_compile=True`` /
  ``steps_per_execution=8`` (to choose those defaults by measurement),

(each variant run ``--repeats`` times, interleaved, keeping the best run: the
machine may be shared) and prints training images per second: over the whole run (first epoch
included: tracing, XLA compilation) and in the later epochs (steady state).
Validation passes are excluded from both numbers (nas_tf's child training
also validates after every epoch; its timing callback separates the two).

  python experiments/cnn_throughput.py --data_dir=../shared/data/cifar10 \
      --num_specs=3 --epochs=3 --steps=10 --out=experiments/results/cnn_throughput.md
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_space.space import CnnSpace
from cnn_space.train import CnnSearchConfig, load_data, make_learning_rate, train_child
from nas_tf.space import Categorical


def random_spec(space: CnnSpace, rng: random.Random):
    tokens = []
    for d in space.decisions():
        if isinstance(d, Categorical):
            tokens.append(rng.randrange(d.num_choices))
        else:
            tokens += [rng.randrange(2) for _ in range(d.num_inputs)]
    return space.tokens_to_spec(tokens)


def plain_fit(spec, data, cfg: CnnSearchConfig, seed: int) -> dict:
    """Keras defaults: build, compile, fit on the same pipeline."""
    import keras

    from cnn_space.builder import build_model
    from cnn_space.data import make_train_dataset

    steps = cfg.steps_per_epoch
    keras.utils.set_random_seed(seed)
    ds = make_train_dataset(data, cfg.batch_size, seed, augment=cfg.augment)
    model = build_model(spec, data.image_shape, data.num_classes, cfg.weight_decay)
    model.compile(
        optimizer=keras.optimizers.SGD(
            make_learning_rate(cfg, steps * cfg.epochs), momentum=cfg.momentum, nesterov=True
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(ds, epochs=cfg.epochs, steps_per_epoch=steps, callbacks=[Timer()], verbose=0)
    imgs = steps * cfg.batch_size
    return {
        "images_per_second": imgs * len(times) / sum(times),
        "images_per_second_steady": imgs * (len(times) - 1) / sum(times[1:]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = os.environ.get(
        "NAS_TF_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--data_dir", default=os.path.join(default_data, "cifar10"))
    parser.add_argument("--train_subset", type=int, default=5000)
    parser.add_argument("--preset", default="v1")
    parser.add_argument("--num_layers", type=int, default=6)
    parser.add_argument("--width_multiplier", type=float, default=0.5)
    parser.add_argument("--num_specs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each variant per spec (interleaved); the best is kept")
    parser.add_argument(
        "--variants", default="plain,nas_tf,nas_tf+xla,nas_tf+spe8",
        help="comma-separated subset of plain,nas_tf,nas_tf+xla,nas_tf+spe8",
    )
    parser.add_argument("--out", default=None, help="append the markdown table to this file")
    args = parser.parse_args()

    cfg = CnnSearchConfig(
        dataset="imagefolder",
        data_dir=args.data_dir,
        train_subset=args.train_subset,
        preset=args.preset,
        num_layers=args.num_layers,
        width_multiplier=args.width_multiplier,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        batch_size=args.batch_size,
    )
    data = load_data(cfg)
    space = CnnSpace(args.preset, num_layers=args.num_layers,
                     width_multiplier=args.width_multiplier)
    rng = random.Random(args.seed)
    variants = args.variants.split(",")
    configs = {
        "nas_tf": cfg,
        "nas_tf+xla": CnnSearchConfig(**{**cfg.to_json(), "jit_compile": True}),
        "nas_tf+spe8": CnnSearchConfig(**{**cfg.to_json(), "steps_per_execution": 8}),
    }
    rows = []
    for i in range(args.num_specs):
        spec = random_spec(space, rng)
        row = {"spec": i}
        runs = {v: [] for v in variants}
        # Variants interleaved (A B C A B C ...) so that changing machine load
        # hits them alike; the best run of each is kept (least disturbed).
        for _ in range(args.repeats):
            for v in variants:
                if v == "plain":
                    m = plain_fit(spec, data, cfg, seed=i)
                else:
                    m = train_child(spec, data, configs[v], seed=i)
                    row["params"] = m["params"]
                    row["mflops"] = m["flops"] / 1e6
                runs[v].append((m["images_per_second"], m["images_per_second_steady"]))
                print(f"  spec {i} {v}: {runs[v][-1][0]:.1f} / {runs[v][-1][1]:.1f} images/s",
                      flush=True)
        for v in variants:
            row[v] = (max(r[0] for r in runs[v]), max(r[1] for r in runs[v]))
        rows.append(row)
        print(f"spec {i}: " + ", ".join(
            f"{v} {row[v][0]:.1f}/{row[v][1]:.1f}" for v in variants), flush=True)

    lines = [
        (f"Training throughput, images/s (whole run incl. first epoch / later epochs); "
        f"{args.num_layers}-layer {args.preset} children, width x{args.width_multiplier}, "
        f"batch {args.batch_size}, {args.epochs} epochs x {args.steps} steps, best of "
        f"{args.repeats} interleaved runs, "
        f"{data.image_shape} images, {os.cpu_count()} CPU cores."),
        "",
        "| spec | params | MFLOPs | " + " | ".join(variants) + " |",
        "|---:|---:|---:|" + "---:|" * len(variants),
    ]
    for row in rows:
        cells = [f"{row[v][0]:.1f} / {row[v][1]:.1f}" for v in variants]
        lines.append(f"| {row['spec']} | {row.get('params', '')} | "
                     f"{row.get('mflops', 0):.0f} | " + " | ".join(cells) + " |")
    if "plain" in variants:
        lines.append("")
        lines.append("| ratio to plain (mean over specs) | whole run | later epochs |")
        lines.append("|---|---:|---:|")
        for v in variants:
            if v == "plain":
                continue
            r0 = sum(r[v][0] / r["plain"][0] for r in rows) / len(rows)
            r1 = sum(r[v][1] / r["plain"][1] for r in rows) / len(rows)
            lines.append(f"| {v} / plain | {r0:.3f} | {r1:.3f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main()
