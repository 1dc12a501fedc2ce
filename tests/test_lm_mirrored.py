"""cells.lm.train_lm on several devices: a MirroredStrategy over two logical CPUs.

The test trains without dropout. The open question -- do the replicas share
a dropout mask? -- was checked on 2026-12-08 (Keras 3.15.1, TF 2.21, two
logical CPUs): yes. Under a MirroredStrategy the state of Keras's
SeedGenerator is a mirrored variable, so ``keras.layers.Dropout`` (and the
language model's ``model.drop``) draws the same mask on every replica: with
``dropout > 0`` the rows of replica 0 and replica 1 get identical masks,
where one device draws one mask for all rows. So with dropout a child on n
devices is not the same training as on one (its dropout noise is correlated
across the n row blocks); without dropout it is (this test). Recorded in
experiments/results/multi_device.md.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CODE = textwrap.dedent("""
    import json, keras, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cells import lm
    from nas_tf.errors import ConfigError
    rng = np.random.default_rng(0)
    cycle = rng.permutation(12)[:5]
    train = np.tile(cycle, 200)[:4 * 6 * 9 + 4].astype(np.int32)  # 9 windows: epoch 2 wraps
    valid = np.tile(cycle, 20).astype(np.int32)
    cfg = lm.LMConfig(units=8, bptt=6, batch_size=4, eval_batch_size=2, epochs=2,
                      steps_per_epoch=6, learning_rate=0.5, max_grad_norm=1.0, sum_over_time=True)
    make = lambda: keras.layers.LSTMCell(8)
    model = lm.LanguageModel(make, 12, cfg)
    model(tf.zeros((4, 1), tf.int32), model.zero_states(4))
    w0 = model.get_weights()
    one = lm.train_lm(make, train, valid, 12, cfg, initial_weights=w0, devices=("/cpu:0",))
    two = lm.train_lm(make, train, valid, 12, cfg, initial_weights=w0,
                      devices=("/cpu:0", "/cpu:1"))
    try:
        lm.train_lm(make, train, valid, 12, lm.LMConfig(units=8, bptt=6, batch_size=3),
                    devices=("/cpu:0", "/cpu:1"))
        error = None
    except ConfigError as e:
        error = str(e)
    kernel = two.model.trainable_variables[1].value  # the tf variable under the Keras one
    diff = max(float(np.max(np.abs(a - b))) for a, b in
               zip(one.model.get_weights(), two.model.get_weights()))
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(w0, two.model.get_weights()))
    print("RESULT", json.dumps({"one": one.history, "two": two.history, "diff": diff,
                                "moved": moved, "error": error,
                                "replicas": [v.device for v in kernel.values]}))
""")


def test_lm_child_trains_on_two_logical_cpus_like_on_one():
    """Runs in a subprocess: logical devices must be set before TF starts."""
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=os.getcwd(), capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    r = json.loads(line[len("RESULT "):])
    assert len(r["replicas"]) == 2  # the weights are mirrored on both devices
    one, two = r["one"], r["two"]
    # Training lowers the loss, and two replicas (2 rows each, own states) follow the
    # one-device run (4 rows) step for step.
    assert two[1]["train_perplexity"] < two[0]["train_perplexity"]
    assert two[1]["val_perplexity"] < 12
    for a, b in zip(one, two):
        for key in ("train_perplexity", "val_perplexity"):
            assert abs(a[key] - b[key]) <= 1e-4 * a[key], (key, a, b)
    assert r["moved"] > 1e-2 and r["diff"] < 1e-5
    assert "batch_size must be a multiple" in r["error"] and "batch_size=3" in r["error"]
