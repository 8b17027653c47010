import numpy as np
import pytest

from openfirst.core.errors import ConfigError
from openfirst.router.errors import DataError
from openfirst.router.public_data import load_llmrouter, load_routellm_gsm8k, load_routellm_mmlu, load_routellm_mt_bench


def test_gsm8k_drops_contaminated(data_dir):
    log = load_routellm_gsm8k(data_dir)
    assert len(log) == 1319 - 12
    assert log.has_frontier
    assert 0.6 < log.local_score.mean() < 0.7 and 0.8 < log.frontier_score.mean() < 0.9
    assert not any(q.startswith("Janet’s ducks lay 16 eggs") for q in log.queries)


def test_mmlu_all_subjects(data_dir):
    log = load_routellm_mmlu(data_dir)
    assert 14_000 < len(log) < 14_042
    assert set(np.unique(log.local_score)) == {0.0, 1.0}


def test_mt_bench_scores_in_unit_interval(data_dir):
    log = load_routellm_mt_bench(data_dir)
    assert 70 <= len(log) < 80
    assert log.local_score.min() >= 0 and log.frontier_score.max() <= 1
    assert log.frontier_score.mean() > log.local_score.mean()


def test_llmrouter_regrouped_by_question(data_dir):
    log = load_llmrouter(data_dir)
    assert len(log) == 5608 + 500
    groups = log.fold_groups()
    assert len(np.unique(groups)) <= len(log) - 119  # shared questions collapse into one group each
    with pytest.raises(ConfigError, match="unknown LLMRouter model"):
        load_llmrouter(data_dir, local_model="gpt-17")


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="missing data file"):
        load_routellm_gsm8k(tmp_path)


def test_a_mistyped_data_set_name_lists_the_valid_ones(tmp_path, monkeypatch):
    """Reported: a mistyped public data set name said only 'no such file'."""
    import pytest

    from openfirst.router.errors import DataError
    from openfirst.router.public_data import DATASETS, load_log_or_public

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        load_log_or_public("routellm-gsm8kk")
    assert "did you mean 'routellm-gsm8k'" in err.value.hint and all(d in err.value.hint for d in DATASETS)
