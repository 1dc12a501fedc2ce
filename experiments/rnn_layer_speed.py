"""Benchmark: training throughput of NASCell / TreeCell vs LSTM layers.

Issue 3, benchmark 1. Measures tokens per second of a compiled training step
(forward + backward + SGD update) of one recurrent layer on a batch of
``--batch`` sequences of ``--steps`` time steps, input size = units (as in a
language model whose embedding size is the hidden size), for:

* ``keras.layers.LSTM(u)``
* ``keras.layers.RNN(cells.NASCell(u))``
* ``cells.NASRNN(u)`` (same weights, ``x @ kernel`` for all steps in one matmul)
* ``keras.layers.RNN(cells.TreeCell(nas_cell_spec(), u))``
* ``keras.layers.RNN(cells.TreeCell(spec, u))`` for random base-8 specs

and prints a markdown table (throughput relative to the LSTM too, by wall
time and by this process's CPU time: on a shared machine the CPU time per
step is much less sensitive to the other jobs than the wall time). The
target of issue 13: NASRNN >= 0.7x the LSTM's throughput on CPU at 200 and 650
units, with and without XLA.

Usage::

    python experiments/rnn_layer_speed.py --units=200,650 --repeats=3 --jit_compile=false,true
"""

from __future__ import annotations

import datetime
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FLAGS = flags.FLAGS
flags.DEFINE_list("units", ["200", "650"], "Hidden sizes to benchmark.")
flags.DEFINE_integer("batch", 20, "Sequences per batch.")
flags.DEFINE_integer("steps", 35, "Time steps per sequence (truncated BPTT length).")
flags.DEFINE_integer("iters", 10, "Timed training steps per repeat.")
flags.DEFINE_integer("warmup", 3, "Untimed training steps before timing (tracing included).")
flags.DEFINE_integer("repeats", 3, "Repeats; the median time per step is reported.")
flags.DEFINE_list("only", [], "Benchmark only the layers whose name starts with one of these "
                  "(LSTM is always timed first, as the reference).")
flags.DEFINE_integer("random_specs", 2, "Number of random base-8 TreeCell specs.")
flags.DEFINE_integer("seed", 0, "Seed of the random specs and data.")
flags.DEFINE_list(
    "jit_compile",
    ["false"],
    "Modes of the train step's tf.function to time: false (graph), true (XLA), or both.",
)


def _layers(units: int, rng: random.Random):
    import keras

    from cells import NASRNN, NASCell, TreeCell, TreeSpace, nas_cell_spec

    space = TreeSpace(8)
    out = [
        ("LSTM", lambda: keras.layers.LSTM(units, return_sequences=True)),
        ("RNN(NASCell)", lambda: keras.layers.RNN(NASCell(units), return_sequences=True)),
        ("NASRNN (x@kernel hoisted)", lambda: NASRNN(units, return_sequences=True)),
        (
            "RNN(TreeCell(nas_cell_spec))",
            lambda: keras.layers.RNN(
                TreeCell(nas_cell_spec(), units, use_bias=False), return_sequences=True
            ),
        ),
    ]
    for i in range(FLAGS.random_specs):
        tokens = [rng.randrange(d.num_choices) for d in space.decisions()]
        spec = space.tokens_to_spec(tokens)
        out.append(
            (
                f"RNN(TreeCell(random spec {i}))",
                lambda spec=spec: keras.layers.RNN(TreeCell(spec, units), return_sequences=True),
            )
        )
    return out


def _time_layer(make_layer, units: int, jit_compile: bool) -> tuple[float, float, int]:
    """Median wall and CPU (this process, all threads) seconds per step, and parameters."""
    import keras
    import numpy as np
    import tensorflow as tf

    layer = make_layer()
    x = tf.constant(
        np.random.default_rng(FLAGS.seed).normal(size=(FLAGS.batch, FLAGS.steps, units)),
        tf.float32,
    )
    layer.build(x.shape)
    optimizer = keras.optimizers.SGD(0.01)
    variables = layer.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def train_step(x):
        with tf.GradientTape() as tape:
            y = layer(x, training=True)
            loss = tf.reduce_mean(tf.square(y))
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)
        return loss

    for _ in range(FLAGS.warmup):
        train_step(x).numpy()
    times, cpu = [], []
    for _ in range(FLAGS.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(FLAGS.iters):
            loss = train_step(x)
        loss.numpy()
        times.append((time.perf_counter() - start) / FLAGS.iters)
        cpu.append((time.process_time() - start_cpu) / FLAGS.iters)
    params = sum(int(np.prod(v.shape)) for v in variables)
    return statistics.median(times), statistics.median(cpu), params


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tokens_per_step = FLAGS.batch * FLAGS.steps
    print(
        f"# RNN layer training throughput, {datetime.date.today()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"TF {tf.__version__}, Keras {keras.__version__}, devices "
        f"{[d.device_type for d in tf.config.list_logical_devices()]}"
    )
    print(
        f"batch={FLAGS.batch}, steps={FLAGS.steps}, input size = units, forward+backward+SGD "
        f"in one tf.function, median of {FLAGS.repeats} x {FLAGS.iters} steps; load average "
        f"at start {' '.join(f'{v:.1f}' for v in os.getloadavg())}\n"
    )
    modes = [m.strip().lower() in ("true", "1", "yes", "xla") for m in FLAGS.jit_compile]
    print("| units | XLA | layer | params | ms / step | tokens / s | vs LSTM | CPU ms / step "
          "| vs LSTM (CPU) |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for units in [int(u) for u in FLAGS.units]:
        for jit in modes:
            lstm_rate = lstm_cpu = None
            for name, make in _layers(units, random.Random(FLAGS.seed)):
                if FLAGS.only and name != "LSTM" and not any(
                        name.startswith(o) for o in FLAGS.only):
                    continue
                seconds, cpu, params = _time_layer(make, units, jit)
                rate = tokens_per_step / seconds
                if lstm_rate is None:
                    lstm_rate, lstm_cpu = rate, cpu
                print(
                    f"| {units} | {'yes' if jit else 'no'} | {name} | {params:,} | "
                    f"{seconds * 1e3:.1f} | {rate:,.0f} | {rate / lstm_rate:.2f}x | "
                    f"{cpu * 1e3:.1f} | {lstm_cpu / cpu:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    app.run(main)
