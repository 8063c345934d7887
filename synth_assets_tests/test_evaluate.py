"""Held-out scoring: deterministic, compared with real-only baselines, with draws, ratio curve, attribution."""

import pandas as pd
import pytest

from synth_assets.core.attribution import attribution_groups
from synth_assets.core.evaluate import confusion_table, score_trainings, top_confusions, train_and_score
from synth_assets.core.heldout import evaluate_on_heldout
from synth_assets.core.mix import mix_version
from synth_assets.core.task_config import EvaluationConfig, MixConfig
from synth_assets.core.verdict import word_for
from synth_assets_tests.conftest import HELDOUT, SEEDS, rows_of

LABELS = sorted(SEEDS)


def _frame(examples, origin):
    return pd.DataFrame(rows_of(examples), columns=["text", "label"]).assign(origin=origin)


def _real():
    frame = _frame(SEEDS, "real")
    return frame.assign(seed_id=[f"s{i}" for i in range(len(frame))], batch="home-b1")


def _pool(examples, template_of=lambda label: "reframe", batch="home-b1"):
    rows = rows_of(examples)
    return pd.DataFrame(
        {
            "row_id": [f"p{i}" for i in range(len(rows))],
            "text": [text for text, _ in rows],
            "label": [label for _, label in rows],
            "batch": batch,
            "batch_order": 0,
            "generator": "template",
            "template_id": [template_of(label) for _, label in rows],
            "seed_ids": [[f"s{i % 8}"] for i in range(len(rows))],
        }
    )


def test_scores_are_in_range_and_per_class_rows_cover_every_label():
    score = train_and_score("seeds", _frame(SEEDS, "real"), _frame(HELDOUT, "real"), LABELS)
    assert 0.0 <= score.macro_f1 <= 1.0 and 0.0 <= score.accuracy <= 1.0
    assert score.per_class["label"].tolist() == LABELS
    assert score.per_class["support"].sum() == sum(len(v) for v in HELDOUT.values())


def test_training_on_the_heldout_texts_scores_perfectly():
    score = train_and_score("oracle", _frame(HELDOUT, "real"), _frame(HELDOUT, "real"), LABELS)
    assert score.accuracy == 1.0 and score.macro_f1 == 1.0


def test_one_label_cannot_be_trained_and_the_table_is_named():
    one = _frame({"alarm_set": SEEDS["alarm_set"]}, "real")
    with pytest.raises(ValueError, match="cannot train 'seeds': it has 1 label"):
        train_and_score("seeds", one, _frame(HELDOUT, "real"), LABELS)
    trainings = {"version": _frame(SEEDS, "real"), "only_alarms": one}
    with pytest.raises(ValueError, match="cannot train 'only_alarms': it has 1 label"):
        score_trainings(trainings, _frame(HELDOUT, "real"), LABELS, "tfidf_logreg")


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="unknown evaluation model 'bert'"):
        train_and_score("seeds", _frame(SEEDS, "real"), _frame(HELDOUT, "real"), LABELS, model="bert")


def test_cached_scores_are_reused_and_equal_to_a_fresh_fit(monkeypatch):
    store: dict[str, dict] = {}
    cache = (store.get, store.__setitem__)
    trainings = {"seeds": _frame(SEEDS, "real")}
    fresh, _ = score_trainings(trainings, _frame(HELDOUT, "real"), LABELS, "tfidf_logreg", cache)
    assert len(store) == 1
    # A second call must not fit: any fit now would fail loudly.
    monkeypatch.setattr("synth_assets.core.evaluate._fit_predict", lambda *args: pytest.fail("refitted a cached table"))
    again, _ = score_trainings(trainings, _frame(HELDOUT, "real"), LABELS, "tfidf_logreg", cache)
    assert again["seeds"].macro_f1 == fresh["seeds"].macro_f1
    assert again["seeds"].per_class.equals(fresh["seeds"].per_class)


def test_confusions_name_the_mistaken_pairs():
    truth = pd.Series(["a", "a", "b", "b", "b"])
    confusion = confusion_table(truth, pd.Series(["a", "b", "a", "a", "b"]).to_numpy(), ["a", "b"])
    assert confusion.loc["b", "a"] == 2 and confusion.loc["a", "a"] == 1
    assert top_confusions(confusion, 5).values.tolist() == [["b", "a", 2], ["a", "b", 1]]


def _evaluate(pool, real_pool=None, repeats=2):
    real = _real()
    training, _ = mix_version("home", "home-b1", real, pool, MixConfig(), 0.5)
    config = EvaluationConfig(repeats=repeats, ratio_curve=[0.0, 0.5, 1.0], attribution_groups=3)
    return training, evaluate_on_heldout(
        "home", "home-b1", training, real, pool, 0.5, MixConfig(), _frame(HELDOUT, "real"), real_pool, LABELS, config
    )


def test_version_is_reported_with_baselines_draws_curve_and_confusion():
    training, evaluation = _evaluate(_pool(HELDOUT), real_pool=_frame(SEEDS, "real"), repeats=3)
    summary = evaluation.summary
    assert set(evaluation.per_class["trained_on"]) == {"version", "seeds_only", "all_real"}
    assert summary["seeds_only"]["train_rows"] == len(rows_of(SEEDS))
    assert summary["version"]["train_rows"] == len(training)
    assert summary["delta_macro_f1_vs_seeds_only"] == pytest.approx(
        summary["version"]["macro_f1"] - summary["seeds_only"]["macro_f1"], abs=1e-4
    )
    assert summary["version_draws"]["draws"] == 3
    assert evaluation.curve["synthetic_share"].tolist() == [0.0, 0.5, 1.0]
    assert (evaluation.curve["train_rows"] == len(training)).all(), "every curve point trains on the version's size"
    # Train-synthetic-test-real on the held-out texts themselves scores perfectly.
    assert evaluation.curve.set_index("synthetic_share")["macro_f1_mean"][1.0] == 1.0
    assert evaluation.confusion.shape == (len(LABELS), len(LABELS))
    assert int(evaluation.confusion.to_numpy().sum()) == sum(len(v) for v in HELDOUT.values())


def test_the_verdict_carries_its_interval_and_every_policy_is_scored_with_its_regret():
    _, evaluation = _evaluate(_pool(HELDOUT), real_pool=_frame(SEEDS, "real"))
    summary = evaluation.summary
    versus = summary["versus_seeds_only"]
    assert versus["ci_low"] <= versus["delta_macro_f1"] <= versus["ci_high"]
    assert versus["delta_macro_f1"] >= 0, "the held-out texts themselves never hurt on held-out"
    assert summary["verdict"] == versus["verdict"] == word_for(versus["ci_low"], versus["ci_high"])
    assert summary["version"]["macro_f1_ci_low"] <= summary["version"]["macro_f1"] <= summary["version"]["macro_f1_ci_high"]
    assert evaluation.policies["policy"].tolist() == [
        "seeds only",
        "seeds + all accepted rows, unweighted",
        "seeds + all accepted rows, synthetic weight share 0.5",
        "seeds + all accepted rows, synthetic weight share 0.75",
        "seeds + all accepted rows, synthetic weight share 0.9",
    ]
    assert evaluation.policies["chosen"].tolist().count("yes") == 1
    best = evaluation.policies["heldout_macro_f1"].max()
    chosen = evaluation.policies.set_index("chosen").loc["yes", "heldout_macro_f1"]
    assert summary["policy_regret_on_heldout"] == pytest.approx(best - chosen, abs=1e-4)
    assert set(summary["other_models"]) == {"tfidf_logreg"}, "TF-IDF is reported beside the task's model"
    assert set(summary["other_models"]["tfidf_logreg"]) == {"version", "seeds_only", "all_real", "versus_seeds_only"}


def test_a_version_is_compared_with_the_previous_versions_predictions():
    heldout = _frame(HELDOUT, "real")
    everything_wrong = heldout["label"].map(lambda label: LABELS[(LABELS.index(label) + 1) % len(LABELS)]).to_numpy()
    real, pool = _real(), _pool(HELDOUT)
    training, _ = mix_version("home", "home-b2", real, pool, MixConfig(), 0.5)
    evaluation = evaluate_on_heldout(
        "home", "home-b2", training, real, pool, 0.5, MixConfig(), heldout, None, LABELS, EvaluationConfig(repeats=1),
        previous=("home-b1", everything_wrong),
    )
    versus = evaluation.summary["versus_previous"]
    assert versus["version"] == "home-b1" and versus["macro_f1"] == 0.0 and versus["verdict"] == "helped"


def _flipped():
    """Held-out texts under the wrong label: synthetic rows that can only hurt."""
    return {label: HELDOUT[LABELS[(LABELS.index(label) + 1) % len(LABELS)]] for label in LABELS}


def test_ratio_curve_falls_as_harmful_synthetic_rows_replace_real_ones():
    _, evaluation = _evaluate(_pool(_flipped()))
    curve = evaluation.curve.set_index("synthetic_share")["macro_f1_mean"]
    assert curve[0.0] > 0.8 > 0.2 > curve[1.0]
    assert curve[0.0] >= curve[0.5] >= curve[1.0]


def test_attribution_points_at_the_group_that_hurts():
    # Template "good" repeats seed wording; template "bad" teaches held-out wording under the wrong label.
    good = _pool(SEEDS, template_of=lambda label: "good")
    bad = _pool(_flipped(), template_of=lambda label: "bad").assign(row_id=lambda f: "q" + f["row_id"])
    training, evaluation = _evaluate(pd.concat([good, bad], ignore_index=True))
    assert {(kind, group) for kind, group, _ in attribution_groups(training, 3)} == {("template", "good"), ("template", "bad")}
    effects = evaluation.attribution.set_index("group")["effect_macro_f1"]
    assert effects["bad"] < -0.2 and effects["bad"] < effects["good"]
    assert evaluation.attribution["group"].iloc[0] == "bad", "the most harmful group comes first"


def test_a_version_without_synthetic_rows_is_scored_once_and_has_no_attribution():
    _, evaluation = _evaluate(_pool({}).iloc[0:0])
    assert evaluation.summary["version_draws"]["draws"] == 1
    assert evaluation.curve["synthetic_share"].tolist() == [0.0]
    assert evaluation.attribution.empty


@pytest.mark.parametrize("model", ["embedding_logreg", "tfidf_logreg"])
def test_sample_weights_steer_each_model(model):
    # Every text appears under two labels; the weight says which reading counts.
    texts = _frame(SEEDS, "real")
    flipped = texts.assign(label=[LABELS[(LABELS.index(label) + 1) % len(LABELS)] for label in texts["label"]])
    both = pd.concat([texts.assign(weight=1.0), flipped.assign(weight=0.01)], ignore_index=True)
    against = pd.concat([texts.assign(weight=0.01), flipped.assign(weight=1.0)], ignore_index=True)
    heldout = _frame(SEEDS, "real")
    assert train_and_score("true", both, heldout, LABELS, model).accuracy == 1.0
    assert train_and_score("flipped", against, heldout, LABELS, model).accuracy == 0.0


def test_the_embedding_model_generalises_from_meaning_where_tfidf_sees_no_shared_word():
    train = pd.DataFrame({"text": ["wake me up at seven", "is it raining outside"], "label": ["alarm_set", "weather_query"]})
    heldout = pd.DataFrame({"text": ["set an alarm for 6am", "will there be a storm"], "label": ["alarm_set", "weather_query"]})
    labels = ["alarm_set", "weather_query"]
    assert train_and_score("seeds", train, heldout, labels, "embedding_logreg").accuracy == 1.0


def test_an_unknown_model_is_named_with_the_ones_available():
    with pytest.raises(ValueError, match="unknown evaluation model 'bert'; available: embedding_logreg, tfidf_logreg"):
        train_and_score("seeds", _frame(SEEDS, "real"), _frame(HELDOUT, "real"), LABELS, "bert")
