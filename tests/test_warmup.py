"""Zero-cost warm-up (nas_tf.warmup): budgets count trained children only, the proxy is
never asked twice for an architecture (also after a resume), each algorithm starts from
the proxy's picks, and a bad request is one clear error."""

from __future__ import annotations

import json

import pytest
from conftest import write_synthetic_nb201_table

import nas_tf
from cnn_space.nb201 import Nb201Spec
from nas_tf.errors import ConfigError
from nas_tf.warmup import SCORES_FILE, WARMUP_DIR, WarmupConfig, rank_scores


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "table.csv"
    return str(path), write_synthetic_nb201_table(path)


class CountingProxy:
    """A proxy that is the table itself plus a constant (so its picks are known)."""

    def __init__(self, accs):
        self.accs, self.calls = accs, []

    def __call__(self, spec):
        self.calls.append(spec.to_arch_string())
        return self.accs[spec.to_arch_string()] + 1000.0


def _search(table_path, run_dir, algorithm, proxy, n=40, children=12, seed=0):
    cfg = nas_tf.search_config(algorithm, children, seed, warmup=WarmupConfig("naswot", n))
    return nas_tf.Search("nb201", table=table_path, run_dir=str(run_dir), config=cfg,
                         proxy=proxy)


@pytest.mark.parametrize("algorithm", ["random", "evolution", "reinforce", "tpe"])
def test_budget_counts_children_only_and_the_proxy_is_asked_once(table, tmp_path, algorithm):
    path, accs = table
    proxy = CountingProxy(accs)
    summary = _search(path, tmp_path, algorithm, proxy).search()
    assert summary["children_trained"] == 12 and summary["warmup_s"] > 0
    assert len(proxy.calls) == len(set(proxy.calls)) and 2 <= len(proxy.calls) <= 40
    lines = (tmp_path / WARMUP_DIR / SCORES_FILE).read_text().splitlines()
    assert len(lines) == len(proxy.calls)
    # Resumed with a larger budget: no architecture is scored again.
    again = CountingProxy(accs)
    cfg = nas_tf.search_config(algorithm, 14, 0, warmup=WarmupConfig("naswot", 40))
    nas_tf.Search("nb201", table=path, run_dir=str(tmp_path), config=cfg,
                  proxy=again).search()
    assert again.calls == []


def test_random_trains_the_proxys_top_k_first(table, tmp_path):
    path, accs = table
    proxy = CountingProxy(accs)
    s = _search(path, tmp_path, "random", proxy)
    s.search()
    scored = sorted(set(proxy.calls), key=lambda a: -accs[a])
    first = [Nb201Spec(tuple(t["spec"]["ops"])).to_arch_string() for t in s.trials()][:8]
    m = s.config.children_per_update
    assert first[:m] == scored[:m]


def test_a_killed_warm_up_resumes_from_its_scores(table, tmp_path):
    path, accs = table

    class Dies(CountingProxy):
        def __call__(self, spec):
            if len(self.calls) == 15:
                raise KeyboardInterrupt
            return super().__call__(spec)

    first = Dies(accs)
    with pytest.raises(KeyboardInterrupt):
        _search(path, tmp_path, "reinforce", first).search()
    second = CountingProxy(accs)
    _search(path, tmp_path, "reinforce", second).search()
    fresh = CountingProxy(accs)
    _search(path, tmp_path / "fresh", "reinforce", fresh).search()
    assert not set(second.calls) & set(first.calls)
    assert sorted(first.calls + second.calls) == sorted(fresh.calls)
    trials = lambda d: [t["spec"] for t in nas_tf.open_run(str(d)).trials()]  # noqa: E731
    assert trials(tmp_path) == trials(tmp_path / "fresh")  # the same search as unbroken


def test_rank_scores_and_config_errors():
    assert rank_scores([1.0, float("nan")], [1.0, 2.0]) == [0.25, 0.0]
    with pytest.raises(ConfigError, match="warmup_architectures"):
        WarmupConfig("naswot", 1)
    with pytest.raises(ConfigError, match="needs a proxy"):
        WarmupConfig(None, 10)
    with pytest.raises(ConfigError, match="scores nb201 cells on images"):
        nas_tf.plugins.get("nb201").make_proxy("naswot", table="t.csv")
    with pytest.raises(ConfigError, match="offers no training-free proxy"):
        nas_tf.plugins.get("rnn").make_proxy("naswot")
    assert json.dumps(WarmupConfig("naswot", 5).to_json())
