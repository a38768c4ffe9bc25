"""Transferability estimators against hand-written references (LogME also against the closed-form marginal
likelihood), the invariances the papers state, and the rankings of models and sources on tiny models."""

import json

import datasets
import numpy as np
import pytest
import torch
from conftest import SOURCE_TOPIC, TARGET_TOPIC, make_reviews, tiny_bert, tokenize
from transformers import DataCollatorWithPadding

from hf_transfer.transferability import h_score, leep, logme, nce, rank_models, rank_sources


def _data(rows=60, dim=5, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, dim))
    labels = (
        (features[:, 0] + 0.5 * rng.normal(size=rows) > 0).astype(int)
        if classes == 2
        else rng.integers(0, classes, rows)
    )
    return features, labels


@pytest.mark.parametrize("rows, dim, classes", [(60, 5, 2), (20, 40, 3)])
def test_logme_is_the_closed_form_marginal_likelihood_at_its_fixed_point(rows, dim, classes):
    features, labels = _data(rows, dim, classes)
    result = logme(features, labels, max_iterations=1000, tolerance=1e-8, details=True)
    assert result.converged[:2].all()  # (a class that no weight fits may drift to α → ∞: checked with a warning)
    # log N(y_c; 0, F Fᵀ / α + I / β) / N, computed directly, is the evidence of each class
    for c in range(classes):
        covariance = features @ features.T / result.alpha[c] + np.eye(rows) / result.beta[c]
        normal = torch.distributions.MultivariateNormal(
            torch.zeros(rows, dtype=torch.float64), torch.tensor(covariance)
        )
        direct = normal.log_prob(torch.tensor((labels == c).astype(float))).item() / rows
        assert result.evidence[c] == pytest.approx(direct, rel=1e-9)
        if not result.converged[c]:
            continue
        # and α, β are MacKay's fixed point: α = γ / mᵀm, β = (N − γ) / ‖y − F m‖²
        a, b, y = result.alpha[c], result.beta[c], (labels == c).astype(float)
        precision = a * np.eye(dim) + b * features.T @ features
        m = b * np.linalg.solve(precision, features.T @ y)
        eigen = np.linalg.eigvalsh(features.T @ features)
        gamma = (b * eigen / (a + b * eigen)).sum()
        assert a == pytest.approx(gamma / (m @ m), rel=1e-5)
        assert b == pytest.approx((rows - gamma) / ((y - features @ m) ** 2).sum(), rel=1e-5)
    assert result.score == pytest.approx(result.evidence.mean())


def test_logme_prefers_features_that_hold_the_labels_and_warns_when_it_does_not_converge():
    features, labels = _data()
    noise = np.random.default_rng(1).normal(size=features.shape)
    assert logme(features, labels) > logme(noise, labels)
    with pytest.warns(UserWarning, match="did not converge in 1 iterations"):
        logme(features, labels, max_iterations=1)


def test_leep_equals_its_definition_and_is_at_most_zero():
    rng = np.random.default_rng(2)
    theta = rng.dirichlet(np.ones(4), size=50)
    labels = rng.integers(0, 3, 50)
    joint = np.zeros((3, 4))
    for i in range(50):  # by hand: P̂(y, z) = (1/N) Σ_i θ(x_i)_z [y_i = y]
        joint[labels[i]] += theta[i] / 50
    by_hand = np.mean([np.log(sum(joint[labels[i], z] / joint[:, z].sum() * theta[i, z] for z in range(4)))
                       for i in range(50)])  # fmt: skip
    assert leep(theta, labels) == pytest.approx(by_hand) and leep(theta, labels) <= 0
    # a source whose labels determine the target's: LEEP = 0 (z = y + 1 with certainty)
    certain = np.eye(4)[labels + 1]
    assert leep(certain, labels) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="probabilities"):
        leep(theta * 2, labels)


def test_nce_is_minus_the_conditional_entropy():
    rng = np.random.default_rng(3)
    source, target = rng.integers(0, 3, 200), rng.integers(0, 2, 200)
    entropy = 0.0
    for z in range(3):  # by hand: H(Y | Z) = Σ_z P(z) H(Y | Z = z)
        rows = target[source == z]
        for y in range(2):
            p = (rows == y).mean()
            entropy -= (source == z).mean() * (p * np.log(p) if p > 0 else 0.0)
    assert nce(source, target) == pytest.approx(-entropy)
    assert nce(target * 2, target) == pytest.approx(0.0)  # y is a function of z
    p = target.mean()
    assert nce(np.zeros(200, dtype=int), target) == pytest.approx(p * np.log(p) + (1 - p) * np.log(1 - p))  # −H(Y)


def test_h_score_equals_its_definition_and_is_invariant_to_invertible_linear_maps():
    features, labels = _data(80, 4)
    centred = features - features.mean(0)
    class_means = {c: centred[labels == c].mean(0) for c in (0, 1)}
    conditional = np.stack([class_means[c] for c in labels])
    by_hand = np.trace(np.linalg.inv(np.cov(centred.T, bias=True)) @ np.cov(conditional.T, bias=True))
    assert h_score(features, labels) == pytest.approx(by_hand)
    transform = np.random.default_rng(4).normal(size=(4, 4))
    assert h_score(7.5 * features, labels) == pytest.approx(by_hand)
    assert h_score(features @ transform + 3.0, labels) == pytest.approx(by_hand)
    assert h_score(np.random.default_rng(5).normal(size=(80, 4)), labels) < by_hand


def _reviews(tokenizer, topic, rows, seed, random_labels=False):
    data = make_reviews(topic, rows, seed)
    if random_labels:
        data["label"] = np.random.default_rng(seed).integers(0, 2, rows).tolist()
    return tokenize(datasets.Dataset.from_dict(data), tokenizer).remove_columns("text")


def test_rank_sources_orders_same_domain_other_domain_then_random_labels(tokenizer):
    """Mean-pooled features of a random tiny BERT (its pooler output is nearly constant): a source of the target's
    own topic first, another topic next, random labels last, under every estimator (checked for model seeds 1-8)."""
    model = tiny_bert(seed=1)
    target = _reviews(tokenizer, SOURCE_TOPIC, 100, seed=1)
    sources = {"same_topic": _reviews(tokenizer, SOURCE_TOPIC, 64, seed=2),
               "random_labels": _reviews(tokenizer, SOURCE_TOPIC, 64, seed=3, random_labels=True),
               "other_topic": _reviews(tokenizer, TARGET_TOPIC, 64, seed=4)}  # fmt: skip
    collator = DataCollatorWithPadding(tokenizer)
    ranking = rank_sources(model, sources, target, collator, features="mean_pooling")
    assert ranking.kind == "source" and [row["candidate"] for row in ranking.rows] == list(sources)
    for estimator in ("logme", "h_score", "leep", "nce"):
        ranks = {row["candidate"]: row[f"rank_{estimator}"] for row in ranking.rows}
        assert ranks["same_topic"] == 1 and ranks["random_labels"] == 3, (estimator, ranks)
    again = rank_sources(model, sources, target, collator, features="mean_pooling")
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in again.rows] == [
        {k: v for k, v in row.items() if k != "seconds"} for row in ranking.rows
    ]
    table = ranking.to_markdown()
    assert table.splitlines()[2].startswith("| same_topic |") and "(1)" in table


def test_rank_models_scores_each_candidate_on_its_own_features(tokenizer, tmp_path):
    target = _reviews(tokenizer, SOURCE_TOPIC, 48, seed=1)
    candidates = {"bert_a": tiny_bert(seed=1), "bert_b": tiny_bert(seed=2)}
    ranking = rank_models(
        candidates, target, DataCollatorWithPadding(tokenizer), estimators=("logme", "h_score", "nce")
    )
    assert {row["candidate"] for row in ranking.rows} == {"bert_a", "bert_b"}
    assert sorted(row["rank_logme"] for row in ranking.rows) == [1, 2]
    from hf_transfer import embed_and_predict

    out = embed_and_predict(candidates["bert_a"], target, DataCollatorWithPadding(tokenizer))
    row = next(r for r in ranking.rows if r["candidate"] == "bert_a")
    assert row["logme"] == pytest.approx(logme(out["features"], out["labels"]))
    assert row["nce"] == pytest.approx(nce(out["logits"].argmax(1), out["labels"]))
    ranking.save(str(tmp_path / "ranking"))
    assert (tmp_path / "ranking.json").exists() and "| candidate |" in (tmp_path / "ranking.md").read_text()
    with pytest.raises(ValueError, match="estimators"):
        rank_models(candidates, target, estimators=("logmee",))
    unlabeled = target.remove_columns("label")
    with pytest.raises(ValueError, match="labeled rows"):
        rank_models(candidates, unlabeled, DataCollatorWithPadding(tokenizer))


def test_recipe_ranks_the_bundled_sources_for_kitchen_and_writes_the_table(tmp_path, tiny_model_dir, capsys):
    from conftest import load_recipe

    out = tmp_path / "rank"
    recipe = load_recipe("rank_transfer")
    quick = ["--max_source_samples", "40", "--max_target_samples", "30", "--max_length", "32"]
    ranking = recipe.main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *quick])
    assert [row["candidate"] for row in ranking.rows] == ["books", "dvd", "electronics"]
    saved = json.loads((out / "ranking.json").read_text())
    assert saved["kind"] == "source" and saved["estimators"] == ["logme", "h_score", "leep", "nce"]
    assert (
        saved["rows"] == ranking.rows
        and "Candidate sources for amazon:kitchen (30 labeled rows)" in capsys.readouterr().out
    )
    models = recipe.main(["--candidate_models", str(tiny_model_dir), "--output_dir", str(out),
                          "--max_target_samples", "30", "--max_length", "32", "--estimators", "logme"])  # fmt: skip
    assert models.kind == "model" and [row["candidate"] for row in models.rows] == [str(tiny_model_dir)]
    with pytest.raises(ValueError, match="names a candidate twice"):
        recipe.main(["--candidate_models", str(tiny_model_dir), str(tiny_model_dir)])
    with pytest.raises(ValueError, match="not both"):
        recipe.main(["--candidate_models", "a", "--candidate_sources", "amazon:books"])
