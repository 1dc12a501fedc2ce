"""A prepared check of this project on a GPU, in under 5 minutes (issue 28, item 10).

Writes ``experiments/results/gpu.md`` (or ``--out``) with:

* the devices TensorFlow sees (and, with one GPU, two logical GPUs split from it);
* a CNN child (``cnn_space.train.train_child``) and an LM child
  (``cells.lm.train_lm``) trained on one device and under a ``MirroredStrategy``
  over two devices, with their step times (the batch rule: ``batch_size`` is the
  global batch, split over the devices);
* ``cells.NASRNN`` against ``keras.layers.LSTM`` (cuDNN on a GPU) in tokens per
  second of a training step, at 200 and 650 units;
* the CNN child and the RNN layers with mixed precision (``mixed_float16``) off and on.

Without a GPU it says so in the file and runs a tiny CPU version of every part
(two logical CPUs stand in for the two devices), so a test can check that it
runs; CPU numbers are not GPU numbers.

Usage::

    python experiments/gpu_check.py                  # GPU: the real sizes; CPU: tiny
    python experiments/gpu_check.py --tiny --out=/tmp/gpu.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Sizes: (GPU, tiny). Every part is timed after a warm-up (tracing excluded where it can be).
SIZES = {
    "gpu": dict(images=6400, image=32, cnn_layers=6, cnn_batch=256, cnn_epochs=3,
                lm_units=200, lm_batch=64, lm_steps=40, lm_epochs=2, rnn_units=(200, 650),
                rnn_batch=64, rnn_steps=35, rnn_iters=20),
    "tiny": dict(images=64, image=8, cnn_layers=2, cnn_batch=16, cnn_epochs=2,
                 lm_units=8, lm_batch=4, lm_steps=2, lm_epochs=2, rnn_units=(8,),
                 rnn_batch=4, rnn_steps=5, rnn_iters=2),
}


def setup_devices(split: bool):
    """Physical devices, and the two devices of the mirrored runs (logical ones
    split from one GPU, or from the CPU without a GPU)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    note = ""
    if gpus:
        if split and len(gpus) == 1:
            try:
                tf.config.set_logical_device_configuration(
                    gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=24_000)] * 2)
                note = "two logical GPUs of 24,000 MB split from GPU 0"
            except (RuntimeError, ValueError) as e:
                note = f"could not split GPU 0 ({e})"
        else:
            for g in gpus:
                tf.config.experimental.set_memory_growth(g, True)
            note = f"{len(gpus)} physical GPU(s), not split"
        names = [d.name for d in tf.config.list_logical_devices("GPU")]
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
        note = "no GPU: two logical CPUs stand in for two devices"
    two = tuple(names[:2]) if len(names) >= 2 else None
    return gpus, names, (names[0],), two, note


def _synthetic_images(n: int, size: int, classes: int = 10):
    import numpy as np

    from cnn_space.data import image_data

    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n).astype(np.int32)
    x = (rng.normal(40 + 15 * y[:, None, None, None], 40, (n, size, size, 3))
         .clip(0, 255).astype(np.uint8))
    cut = n * 9 // 10
    return image_data(x[:cut], y[:cut], x[cut:], y[cut:], [str(c) for c in range(classes)],
                      "synthetic")


def _first_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:160]}".replace("|", "/")


def cnn_rows(s: dict, devices_sets, data) -> list[str]:
    import keras

    from cnn_space.space import CnnSpec
    from cnn_space.train import CnnSearchConfig, train_child

    # A chain of 3x3 layers of 36 filters, each also fed by the layer two before it.
    spec = CnnSpec(layers=tuple((3, 3, 36, 1, (i - 2,) if i >= 2 else ())
                                for i in range(s["cnn_layers"])))
    rows = []
    for policy in ("float32", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        for devices in devices_sets:
            cfg = CnnSearchConfig(num_layers=s["cnn_layers"], epochs=s["cnn_epochs"],
                                  batch_size=s["cnn_batch"], min_steps_per_epoch=None,
                                  bn_recalibration="off")
            try:
                m = train_child(spec, data, cfg, seed=0, devices=devices)
                rate = m.get("images_per_second_steady") or m["images_per_second"]
                step = m["global_batch_size"] / rate
                rows.append(f"| CNN child ({s['cnn_layers']} layers) | {policy} | "
                            f"{len(devices)} ({', '.join(devices)}) | {m['global_batch_size']} | "
                            f"{1000 * step:.1f} ms | {rate:.0f} images/s |")
            except Exception as e:  # noqa: BLE001 - one line per failed part, the rest runs
                rows.append(f"| CNN child | {policy} | {len(devices)} | - | failed: "
                            f"{_first_line(e)} | |")
    keras.mixed_precision.set_global_policy("float32")
    return rows


def lm_rows(s: dict, devices_sets) -> list[str]:
    import numpy as np

    from cells import NASCell
    from cells.lm import LMConfig, train_lm

    rng = np.random.default_rng(0)
    vocab = 100
    tokens = rng.integers(0, vocab, s["lm_batch"] * 35 * (s["lm_steps"] + 1)).astype(np.int32)
    rows = []
    for devices in devices_sets:
        cfg = LMConfig(units=s["lm_units"], bptt=35, batch_size=s["lm_batch"],
                       eval_batch_size=s["lm_batch"], epochs=s["lm_epochs"],
                       steps_per_epoch=s["lm_steps"])
        try:
            r = train_lm(lambda: NASCell(s["lm_units"]), tokens, tokens[:2000], vocab, cfg,
                         devices=devices, max_valid_windows=2)
            sec = r.history[-1]["seconds"] / s["lm_steps"]  # the last epoch: traced already
            rows.append(f"| LM child (NAS cell, {s['lm_units']} units) | float32 | "
                        f"{len(devices)} ({', '.join(devices)}) | {s['lm_batch']} | "
                        f"{1000 * sec:.1f} ms | {s['lm_batch'] * 35 / sec:.0f} tokens/s |")
        except Exception as e:  # noqa: BLE001
            rows.append(f"| LM child | float32 | {len(devices)} | - | failed: "
                        f"{_first_line(e)} | |")
    return rows


def rnn_rows(s: dict) -> list[str]:
    import keras
    import numpy as np
    import tensorflow as tf

    from cells import NASRNN

    rows = []
    for policy in ("float32", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        for units in s["rnn_units"]:
            x = tf.constant(np.random.default_rng(0).normal(
                size=(s["rnn_batch"], s["rnn_steps"], units)).astype("float32"))
            for name, make in (("keras.layers.LSTM", lambda u=units: keras.layers.LSTM(
                    u, return_sequences=True)), ("cells.NASRNN", lambda u=units: NASRNN(
                        u, return_sequences=True))):
                layer, opt = make(), keras.optimizers.SGD(0.01)
                layer(x)

                @tf.function
                def step(layer=layer, opt=opt):
                    with tf.GradientTape() as tape:
                        loss = tf.reduce_mean(tf.cast(layer(x), tf.float32) ** 2)
                    grads = tape.gradient(loss, layer.trainable_variables)
                    opt.apply_gradients(zip(grads, layer.trainable_variables))
                    return loss

                float(step())  # trace
                t0 = time.perf_counter()
                for _ in range(s["rnn_iters"]):
                    loss = step()
                float(loss)
                sec = (time.perf_counter() - t0) / s["rnn_iters"]
                rows.append(f"| {name} | {units} | {policy} | {1000 * sec:.2f} ms | "
                            f"{s['rnn_batch'] * s['rnn_steps'] / sec:,.0f} |")
    keras.mixed_precision.set_global_policy("float32")
    return rows


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "experiments" / "results" / "gpu.md"))
    parser.add_argument("--tiny", action="store_true", help="Tiny sizes even on a GPU.")
    parser.add_argument("--no_split", action="store_true",
                        help="Do not split one GPU into two logical GPUs.")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_start = time.perf_counter()
    gpus, names, one, two, note = setup_devices(split=not args.no_split)
    import keras
    import tensorflow as tf

    s = SIZES["tiny" if (args.tiny or not gpus) else "gpu"]
    lines = ["# GPU check (`experiments/gpu_check.py`)", ""]
    if not gpus:
        lines += ["**This run had no GPU**: it is the tiny CPU version (a smoke run); its numbers",
                  "are CPU numbers, not GPU numbers.", ""]
    lines += [f"Date: {datetime.datetime.now():%Y-%m-%d %H:%M}. Machine: {platform.node()}, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}. TensorFlow "
              f"{tf.__version__}, Keras {keras.__version__}. Command: `python "
              f"experiments/gpu_check.py{' --tiny' if args.tiny else ''}`.", "",
              "## Devices", "",
              f"Physical GPUs: {', '.join(g.name for g in gpus) or 'none'}. "
              f"Logical devices used: {', '.join(names)}. {note}.", ""]
    sets = [one] + ([two] if two else [])
    data = _synthetic_images(s["images"], s["image"])
    lines += ["## Children on one device and under a MirroredStrategy over two", "",
              "Synthetic data (CIFAR-shaped images / random tokens); the step time is of the",
              "later epochs (tracing excluded) where the trainer reports it.", "",
              "| child | precision | devices | global batch | time per step | throughput |",
              "|---|---|---|---:|---:|---:|"]
    lines += cnn_rows(s, sets, data) + lm_rows(s, sets)
    lines += ["", "## NASRNN against keras.layers.LSTM (cuDNN on a GPU)", "",
              f"One layer, input size = units, batch {s['rnn_batch']} x {s['rnn_steps']} steps, "
              "a compiled forward + backward + SGD step, "
              f"mean of {s['rnn_iters']} steps after tracing.", "",
              "| layer | units | precision | time per step | tokens/s |",
              "|---|---:|---|---:|---:|"]
    lines += rnn_rows(s)
    lines += ["", f"Total time: {time.perf_counter() - t_start:.0f} s.", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
