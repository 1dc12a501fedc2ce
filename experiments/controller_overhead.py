r"""What the controller costs next to its children in the README quickstart.

Runs the quickstart search (``python -m nas_tf.run --space=rnn
--run_dir=...``: the same flags, so the same space, children and REINFORCE
settings) in this process, timing every controller call, and prints:

* the share of the search's wall time spent training children (sum of the
  children's durations / ``wall_time_s``);
* each controller update (``feedback``) and sample (``propose``) time; the
  first of each includes tracing.

  python experiments/controller_overhead.py [--legacy_seeding] [-- extra run flags]

``--legacy_seeding`` makes the children seed with ``keras.utils.set_random_seed``
as they did before issue 9 (it sets TensorFlow's global seed, which clears the
compiled kernels of every tf.function, the controller's included), to show
the difference.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    legacy = "--legacy_seeding" in argv
    extra = [a for a in argv if a != "--legacy_seeding"]
    from absl import flags

    from nas_tf import plugins, run
    from nas_tf.algorithms import make_algorithm
    from nas_tf.loop import read_trials, run_search

    if legacy:
        import keras

        import cells.lm

        cells.lm.seed_child = keras.utils.set_random_seed

    run_dir = tempfile.mkdtemp(prefix="quickstart_")
    flags.FLAGS(["nas_tf.run", "--space=rnn", f"--run_dir={run_dir}", *extra])
    plugin = plugins.get("rnn")
    config = run._search_config(plugin.default_max_children if run.MAX_CHILDREN.value is None
                                else run.MAX_CHILDREN.value)
    space, evaluator = plugin.make(**plugin.settings_from_flags(flags.FLAGS))
    algorithm = make_algorithm(space, config)
    calls = {"propose": [], "feedback": []}
    for name in calls:
        inner = getattr(algorithm, name)

        def timed(*a, _inner=inner, _name=name, **kw):
            t = time.perf_counter()
            try:
                return _inner(*a, **kw)
            finally:
                calls[_name].append(time.perf_counter() - t)

        setattr(algorithm, name, timed)
    summary = run_search(space, evaluator, run_dir=run_dir, config=config, algorithm=algorithm)
    durations = [t.duration for t in read_trials(run_dir) if t.duration is not None]
    wall = summary["wall_time_s"]
    share = sum(durations) / wall
    print(f"quickstart: python -m nas_tf.run --space=rnn --run_dir={run_dir} {' '.join(extra)}"
          f"{' (legacy seeding)' if legacy else ''}")
    print("| children | wall_time_s | sum of children's durations (s) | share in children "
          "| updates | first update (s) | max later update (ms) | max later sample (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    fb, pr = calls["feedback"], calls["propose"]
    print(f"| {len(durations)} | {wall:.1f} | {sum(durations):.1f} | {100 * share:.1f} % "
          f"| {len(fb)} | {fb[0]:.2f} | {1000 * max(fb[1:], default=float('nan')):.1f} "
          f"| {1000 * max(pr[1:], default=float('nan')):.1f} |")
    print("updates (ms):", " ".join(f"{1000 * x:.0f}" for x in fb))
    print("samples (ms):", " ".join(f"{1000 * x:.0f}" for x in pr))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
