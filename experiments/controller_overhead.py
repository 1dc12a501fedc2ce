r"""What the controller costs next to its children in the README quickstart.

Runs the quickstart search (``python -m nas_tf.run --space=rnn
--run_dir=...``: the same flags, so the same space, children and REINFORCE
settings) in this process, timing every controller call, and prints:

* the share of the search's wall time spent training children (sum of the
  children's durations / ``wall_time_s``);
* each controller update (``feedback``) and sample (``propose``) time; the
  first of each includes tracing;
* what the process spends outside ``wall_time_s`` (imports, building the
  space and the evaluator, loading the data as the CLI does before the
  search, building the controller) and the share in children of the whole
  process, so that nothing is hidden by where ``wall_time_s`` starts.

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

START = time.perf_counter()  # before TensorFlow is imported


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    legacy = "--legacy_seeding" in argv
    extra = [a for a in argv if a != "--legacy_seeding"]
    stages = {}
    t = time.perf_counter()
    from absl import flags

    from nas_tf import plugins, run
    from nas_tf.algorithms import make_algorithm
    from nas_tf.loop import read_trials, run_search

    if legacy:
        import keras

        import cells.lm

        cells.lm.seed_child = keras.utils.set_random_seed

    stages["imports"] = time.perf_counter() - t
    run_dir = tempfile.mkdtemp(prefix="quickstart_")
    flags.FLAGS(["nas_tf.run", "--space=rnn", f"--run_dir={run_dir}", *extra])
    plugin = plugins.get("rnn")
    config = run._search_config(plugin.default_max_children if run.MAX_CHILDREN.value is None
                                else run.MAX_CHILDREN.value)
    t = time.perf_counter()
    space, evaluator = plugin.make(**plugin.settings_from_flags(flags.FLAGS))
    stages["space + evaluator"] = time.perf_counter() - t
    t = time.perf_counter()
    plugin.check_data(space, evaluator)  # as nas_tf.run does: the data load precedes the search
    stages["data load (check_data)"] = time.perf_counter() - t
    # The CLI loads files before the search, but a synthetic corpus is made
    # by the first child (inside its duration): time that on a second evaluator.
    probe, data_in_child = plugin.make(**plugin.settings_from_flags(flags.FLAGS))[1], 0.0
    if getattr(getattr(probe, "config", None), "dataset", None) == "synthetic":
        t = time.perf_counter()
        probe.data()
        data_in_child = time.perf_counter() - t
    t = time.perf_counter()
    algorithm = make_algorithm(space, config)
    stages["controller build"] = time.perf_counter() - t
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
    t = time.perf_counter()
    summary = run_search(space, evaluator, run_dir=run_dir, config=config, algorithm=algorithm)
    stages["run_search (call)"] = time.perf_counter() - t
    total = time.perf_counter() - START
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
    controller = sum(fb) + sum(pr)
    print(f"inside wall_time_s: children {sum(durations):.1f} s, controller calls "
          f"{controller:.2f} s (first sample {pr[0]:.2f} + first update {fb[0]:.2f}), the rest "
          f"(store, checkpoints, logs, loop) {wall - sum(durations) - controller:.2f} s; "
          f"the children's time includes making the synthetic corpus ({data_in_child:.2f} s)")
    print("outside wall_time_s: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()
                                                 if k != "run_search (call)")
          + f"; run_search call {stages['run_search (call)']:.1f} s vs wall_time_s {wall:.1f} s")
    print(f"whole process {total:.1f} s: share in children {100 * sum(durations) / total:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
