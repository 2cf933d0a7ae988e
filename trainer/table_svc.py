"""The table model's kernel member: a calibrated RBF support-vector classifier, written as Keras layers.

scikit-learn fits it (:func:`fit_svc`: ``SVC(C, kernel="rbf", gamma="scale")`` inside
``CalibratedClassifierCV(method="sigmoid", ensemble=False)``, Platt's per-class sigmoids fitted
on 5-fold out-of-fold decision values), and :func:`svc_branch` rebuilds its
``predict_proba`` from standard Keras layers, so the bundle's one ``.tflite`` runs it with
the MLPs and nothing but LiteRT is needed at run time. Per window, on standardised
features x (1 x F):

1. RBF kernel against the S support vectors s: ``exp(-gamma |x - s|^2)``, as
   ``2 gamma x.s - gamma |s|^2 - gamma |x|^2`` (Dense and a squared-input Dense) then ``exp``.
2. One-vs-one decision values of the 45 class pairs (i, j): ``K @ W + b`` (libsvm's dual
   coefficients and intercepts).
3. scikit-learn's one-vs-rest shape (``sklearn.utils.multiclass._ovr_decision_function``):
   votes (pair (i, j) votes i when its value is >= 0, else j) plus the summed
   confidences through ``x / (3 (|x| + 1))``, i.e. softsign / 3. The vote is a step, built
   as ``hard_sigmoid(1e7 d)``: exact wherever |d| > 3e-7.
4. Per-class sigmoid ``1 / (1 + exp(a f + b))`` (Platt 1999), then normalised to sum 1
   (softmax of the log-sigmoids).

Two labels are scikit-learn's binary case: one decision value d (the single pair's, positive
for the second label), no votes, and one calibrator (a, b) for the second label, p = 1 / (1 +
exp(a d + b)) and 1 - p for the first: the softmax of ``log_sigmoid(a d + b)`` and
``log_sigmoid(-(a d + b))``.

Cost: S x F multiply-adds and S exponentials a window (S is about 3,500 for the default
bundle: well under 0.1 ms). The layers hold their weights fixed; only the MLP trains.
"""

from __future__ import annotations

import numpy as np

#: Folds of the Platt calibration (stratified): every fit needs at least this many training rows of each label.
CALIBRATION_FOLDS = 5

#: Scale that turns a decision value into a 0/1 vote through hard_sigmoid (relu6(x + 3) / 6).
_STEP_SCALE = 1e7


def fit_svc(x: np.ndarray, y: np.ndarray, c: float, n_labels: int):
    """A calibrated RBF SVC fitted on standardised ``x`` (rows x F) and labels ``y`` in
    ``range(n_labels)`` (every label must occur). Deterministic (libsvm, unshuffled stratified
    5-fold calibration). Raises ``ValueError`` when a label has no rows, or fewer than
    :data:`CALIBRATION_FOLDS`."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    if len(np.unique(y)) != n_labels:
        raise ValueError(f"the SVC member needs rows of all {n_labels} labels, got {len(np.unique(y))}")
    counts = np.bincount(y, minlength=n_labels)
    if counts.min() < CALIBRATION_FOLDS:
        raise ValueError(f"the SVC member's {CALIBRATION_FOLDS}-fold calibration needs at least {CALIBRATION_FOLDS} "
                         f"training rows of every label; label {int(counts.argmin())} has {int(counts.min())}")
    return CalibratedClassifierCV(SVC(C=c, kernel="rbf", gamma="scale"), method="sigmoid", cv=CALIBRATION_FOLDS,
                                  ensemble=False).fit(x, y)


def svc_weights(calibrated) -> dict[str, np.ndarray]:
    """The fitted model as plain arrays: support vectors (S x F), gamma, pair weights (S x P) and
    intercepts (P), vote / confidence matrices (P x labels) and the calibrators' (a, b): one per
    label, or for two labels (P = 1, sklearn's decision_function) a single one, of the second label."""
    inner = calibrated.calibrated_classifiers_[0]
    svc, calibrators = inner.estimator, inner.calibrators
    n = len(svc.classes_)
    sv = np.asarray(svc.support_vectors_, dtype=np.float64)
    starts = np.concatenate(([0], np.cumsum(svc.n_support_)))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]  # libsvm's one-vs-one order
    w = np.zeros((len(sv), len(pairs)))
    to_i = np.zeros((len(pairs), n))
    to_j = np.zeros((len(pairs), n))
    for k, (i, j) in enumerate(pairs):  # libsvm's layout of dual_coef_ for one-vs-one
        si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
        w[si, k] = svc.dual_coef_[j - 1, si]
        w[sj, k] = svc.dual_coef_[i, sj]
        to_i[k, i] = 1.0
        to_j[k, j] = 1.0
    return {
        "support_vectors": sv, "gamma": np.float64(svc._gamma), "pair_weights": w, "pair_bias": np.asarray(svc.intercept_, np.float64),
        "to_i": to_i, "to_j": to_j,
        "a": np.array([c.a_ for c in calibrators], np.float64), "b": np.array([c.b_ for c in calibrators], np.float64),
    }


def svc_branch(inp, calibrated, name: str = "svc"):
    """Keras tensor of the SVC's calibrated probabilities (batch x labels, summing to 1: sklearn's
    ``predict_proba``) for the Keras input ``inp`` of standardised features (batch x F); every layer
    is built with its fitted weights, frozen. Two labels or more."""
    from keras import layers

    p = svc_weights(calibrated)
    sv, gamma = p["support_vectors"], float(p["gamma"])
    n_sv, n_in = sv.shape
    n_labels = p["to_i"].shape[1]
    n_pairs = p["to_i"].shape[0]

    def dense(units, kernel, bias, suffix, activation=None, source=None):
        layer = layers.Dense(units, activation=activation, use_bias=bias is not None, trainable=False, name=f"{name}_{suffix}")
        out = layer(source)
        layer.set_weights([kernel.astype(np.float32)] + ([bias.astype(np.float32)] if bias is not None else []))
        return out

    cross = dense(n_sv, 2.0 * gamma * sv.T, -gamma * np.sum(sv**2, axis=1), "cross", source=inp)
    squared = layers.Multiply(name=f"{name}_square")([inp, inp])
    norm = dense(1, np.full((n_in, 1), -gamma), None, "norm", source=squared)
    kernel = layers.Activation("exponential", name=f"{name}_kernel")(layers.Add(name=f"{name}_distance")([cross, norm]))
    decision = dense(n_pairs, p["pair_weights"], p["pair_bias"], "pairs", source=kernel)
    if n_labels == 2:  # sklearn's binary case: one decision value, one calibrator (of the second label)
        a, b = float(p["a"][0]), float(p["b"][0])
        logit = dense(2, np.array([[a, -a]]), np.array([b, -b]), "calibration", activation="log_sigmoid", source=decision)
        return layers.Activation("softmax", name=f"{name}_probabilities")(logit)
    vote = dense(n_pairs, np.eye(n_pairs) * _STEP_SCALE, None, "step", activation="hard_sigmoid", source=decision)
    votes = dense(n_labels, p["to_i"] - p["to_j"], p["to_j"].sum(axis=0), "votes", source=vote)
    confidence = dense(n_labels, p["to_i"] - p["to_j"], None, "confidence", activation="softsign", source=decision)
    third = dense(n_labels, np.eye(n_labels) / 3.0, None, "confidence_third", source=confidence)
    ovr = layers.Add(name=f"{name}_ovr")([votes, third])
    logit = dense(n_labels, np.diag(-p["a"]), -p["b"], "calibration", activation="log_sigmoid", source=ovr)
    return layers.Activation("softmax", name=f"{name}_probabilities")(logit)
