"""Fit the combined score of answer selection on recorded candidates (``gatedrag tune --combiner``).

Each candidate of each record (runs with ``policy.select``) is one example: its features
(:func:`gatedrag.gate.select.candidate_features`) and whether its answer is right (EM against the
question's gold answers). A logistic regression on standardised features is fitted on all of
them; the calibration map (isotonic by default, or Platt) is fitted on out-of-fold probabilities
(folds grouped by question, so a question's candidates never help score each other), and the
out-of-fold AUROC/ECE reported in ``Combiner.fitted`` are estimates on questions not used for
fitting. Needs scikit-learn (``pip install 'gatedrag[select]'``).

Example::

    from gatedrag.evals.combining import fit_combiner
    combiner = fit_combiner(records)          # records of runs with policy.select on spare questions
    combiner.save("combiner.json")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from gatedrag.config import PipelineConfig, SelectConfig
from gatedrag.errors import ConfigError
from gatedrag.gate.combiner import Calibration, Combiner
from gatedrag.gate.select import ScoredCandidate, candidate_features, choose

from .calibration import auroc, ece
from .datasets import DEFAULT_DATA_DIR, dataset_spec
from .metrics import score
from .runner import ProgressCallback, QuestionRecord, evaluate_configs


def features_of(c: ScoredCandidate) -> dict[str, float]:
    """A recorded candidate's features, as the pipeline computed them when it scored it."""
    return candidate_features(
        c,
        p_true=c.p_true,
        agreement=c.agreement,
        agreement_soft=c.agreement_soft,
        sample_agreement=c.sample_agreement,
        sample_agreement_soft=c.sample_agreement_soft,
    )


def candidate_table(records: Sequence[QuestionRecord]) -> tuple[list[dict[str, float]], list[bool], list[str]]:
    """Features, correctness and question id of every recorded candidate."""
    rows: list[dict[str, float]] = []
    right: list[bool] = []
    groups: list[str] = []
    for r in records:
        for c in r.candidates:
            rows.append(features_of(c))
            right.append(score(c.answer, r.answers, r.metric)["em"] >= 1.0)
            groups.append(f"{r.dataset}/{r.id}")
    return rows, right, groups


def fit_combiner(
    records: Sequence[QuestionRecord],
    *,
    features: Sequence[str] | None = None,
    calibration: Literal["isotonic", "platt"] = "isotonic",
    folds: int = 5,
    c: float = 1.0,
    seed: int = 0,
) -> Combiner:
    """Fit a :class:`Combiner` on the records' candidates (see the module doc)."""
    rows, right, groups = candidate_table(records)
    return fit_table(rows, right, groups, features=features, calibration=calibration, folds=folds, c=c, seed=seed)


def fit_table(
    rows: Sequence[Mapping[str, float]],
    right: Sequence[bool],
    groups: Sequence[str],
    *,
    features: Sequence[str] | None = None,
    calibration: Literal["isotonic", "platt"] = "isotonic",
    folds: int = 5,
    c: float = 1.0,
    seed: int = 0,
) -> Combiner:
    """Fit a :class:`Combiner` on feature rows, whether each is right, and the group each belongs to
    (a question, a claim: folds never split a group); what :func:`fit_combiner` and the
    fact-checker's calibration fit."""
    try:
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold
    except ImportError:
        raise ConfigError("fitting a combiner needs scikit-learn: pip install 'gatedrag[select]'") from None
    y = np.asarray(right, dtype=bool)
    if len(rows) < 20 or y.all() or not y.any():
        raise ConfigError(
            f"{len(rows)} candidates ({int(y.sum())} right): a combiner needs at least 20, some right and some wrong"
        )
    names = list(features) if features is not None else sorted({k for row in rows for k in row})
    x = np.array([[row.get(n, np.nan) for n in names] for row in rows], dtype=np.float64)
    mean = np.nanmean(x, axis=0)
    keep = [j for j in range(len(names)) if np.nanstd(x[:, j]) > 1e-12]  # a constant feature says nothing
    names, x, mean = [names[j] for j in keep], x[:, keep], mean[keep]
    scale = np.nanstd(x, axis=0)
    z = np.where(np.isnan(x), 0.0, (x - mean) / scale)  # a missing value sits at the mean

    def model() -> Any:
        return LogisticRegression(C=c, max_iter=1000, random_state=seed)

    n_groups = len(set(groups))
    k = max(2, min(folds, n_groups))
    oof = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=k).split(z, y, groups):
        if y[train].all() or not y[train].any():
            oof[test] = y[train].mean()
            continue
        oof[test] = model().fit(z[train], y[train]).predict_proba(z[test])[:, 1]
    full = model().fit(z, y)
    if calibration == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(oof, y.astype(float))
        cal = Calibration(
            kind="isotonic", x=[float(v) for v in iso.X_thresholds_], y=[float(v) for v in iso.y_thresholds_]
        )
    else:
        logit = np.log(np.clip(oof, 1e-9, 1 - 1e-9) / np.clip(1 - oof, 1e-9, 1))
        platt = LogisticRegression(max_iter=1000).fit(logit.reshape(-1, 1), y)
        cal = Calibration(kind="platt", a=float(platt.coef_[0, 0]), b=float(platt.intercept_[0]))
    # the ECE reported is out of fold for the calibration map too (a map scored on the points it
    # was fitted on, isotonic above all, looks perfectly calibrated)
    calibrated_oof = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=k).split(z, y, groups):
        if y[train].all() or not y[train].any():
            calibrated_oof[test] = y[train].mean()
        elif calibration == "isotonic":
            fold = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
                oof[train], y[train].astype(float)
            )
            calibrated_oof[test] = fold.predict(oof[test])
        else:
            lt = np.log(np.clip(oof, 1e-9, 1 - 1e-9) / np.clip(1 - oof, 1e-9, 1))
            fold_platt = LogisticRegression(max_iter=1000).fit(lt[train].reshape(-1, 1), y[train])
            calibrated_oof[test] = fold_platt.predict_proba(lt[test].reshape(-1, 1))[:, 1]
    single = {}
    for j, name in enumerate(names):
        col = np.where(np.isnan(x[:, j]), mean[j], x[:, j])
        a = auroc(list(col), list(~y))  # a feature's AUROC for predicting a wrong answer, either sign
        if a is not None:
            single[name] = round(max(a, 1 - a), 3)
    wrong_auroc = auroc([1 - p for p in oof], list(~y))
    return Combiner(
        features=names,
        weights=[float(w) for w in full.coef_[0]],
        bias=float(full.intercept_[0]),
        mean=[float(m) for m in mean],
        scale=[float(s) for s in scale],
        calibration=cal,
        fitted={
            "candidates": len(rows),
            "questions": n_groups,
            "right": int(y.sum()),
            "datasets": sorted({g.split("/")[0] for g in groups}),
            "folds": k,
            "auroc_wrong_oof": None if wrong_auroc is None else round(wrong_auroc, 3),
            "ece_oof": None if (e := ece(list(calibrated_oof), list(y))) is None else round(e, 3),
            "best_single_feature_auroc": max(single.values(), default=None),
            "feature_auroc": single,
        },
    )


def tune_combiner(
    datasets: Sequence[str],
    *,
    out: Path,
    limit: int = 100,
    offset: int = 100,
    data_dir: Path = DEFAULT_DATA_DIR,
    base: PipelineConfig | None = None,
    calibration: Literal["isotonic", "platt"] = "isotonic",
    on_record: ProgressCallback | None = None,
    on_method: Callable[[str, int, int], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Combiner, Path]:
    """Run ``base`` with answer selection (P(True) scoring) on questions ``offset .. offset + limit``
    of each dataset (resumable, under ``out``), fit a combiner on all their candidates and save it
    as ``out/combiner.json``."""
    base = base or PipelineConfig()
    select = (base.policy.select or SelectConfig()).model_copy(update={"combiner": None, "verify": True})
    # the combiner learns from every feature the config computes: keep its samples setting
    config = base.model_copy(update={"policy": base.policy.model_copy(update={"select": select})})
    records: list[QuestionRecord] = []
    for dataset in datasets:
        spec = dataset_spec(dataset)
        from .baselines import method_config

        got: dict[str, list[QuestionRecord]] = {}
        evaluate_configs(
            spec.name,
            {"combiner-fit": method_config("gated", spec.name, config)},
            out=out,
            limit=limit,
            offset=offset,
            data_dir=data_dir,
            on_record=on_record,
            on_method=on_method,
            progress=progress,
            records_out=got,
        )
        records += got["combiner-fit"]
    combiner = fit_combiner(records, calibration=calibration)
    return combiner, combiner.save(out / "combiner.json")


class SelectionReport(BaseModel):
    """How well answer selection chose on records of runs with ``policy.select`` (questions not used
    for fitting): EM of the last candidate (the answer without selection), of the candidate each
    scorer prefers and of the best candidate (the oracle); AUROC of 1 - the chosen candidate's score
    for a wrong answer; ECE of that score as the confidence shown."""

    model_config = ConfigDict(extra="forbid")
    questions: int
    with_candidates: int
    em_last: float
    em_recorded: float
    em_oracle: float
    em_by: dict[str, float]
    auroc_wrong_by: dict[str, float | None]
    ece_by: dict[str, float | None]


def selection_report(
    records: Sequence[QuestionRecord], combiners: Mapping[str, Combiner] | None = None
) -> SelectionReport:
    """Score the recorded candidates again with each of ``combiners`` (and by P(True), as recorded)
    and say what each choice would have answered (see :class:`SelectionReport`)."""
    scorers: dict[str, Callable[[dict[str, float], ScoredCandidate], float]] = {
        "p_true": lambda f, c: c.p_true if c.p_true is not None else c.confidence,
    }
    for name, comb in (combiners or {}).items():
        scorers[name] = lambda f, c, comb=comb: comb.probability(f)
    em: dict[str, list[float]] = {k: [] for k in scorers}
    conf: dict[str, list[float]] = {k: [] for k in scorers}
    last, oracle, with_c = [], [], 0
    for r in records:
        if not r.candidates:
            for k in scorers:
                em[k].append(r.em)
                conf[k].append(r.confidence)
            last.append(r.em)
            oracle.append(r.em)
            continue
        with_c += 1
        right = [score(c.answer, r.answers, r.metric)["em"] for c in r.candidates]
        feats = [features_of(c) for c in r.candidates]
        for k, fn in scorers.items():
            scores = [fn(f, c) for f, c in zip(feats, r.candidates)]
            best = choose(scores)
            em[k].append(right[best])
            conf[k].append(float(scores[best]))
        last.append(right[-1])
        oracle.append(max(right))
    n = len(records)
    return SelectionReport(
        questions=n,
        with_candidates=with_c,
        em_last=round(sum(last) / n, 3),
        em_recorded=round(sum(r.em for r in records) / n, 3),
        em_oracle=round(sum(oracle) / n, 3),
        em_by={k: round(sum(v) / n, 3) for k, v in em.items()},
        auroc_wrong_by={
            k: None if (a := auroc([1 - c for c in conf[k]], [e < 1 for e in em[k]])) is None else round(a, 3)
            for k in scorers
        },
        ece_by={k: None if (e := ece(conf[k], [x >= 1 for x in em[k]])) is None else round(e, 3) for k in scorers},
    )


__all__ = [
    "SelectionReport",
    "candidate_table",
    "features_of",
    "fit_combiner",
    "fit_table",
    "selection_report",
    "tune_combiner",
]
