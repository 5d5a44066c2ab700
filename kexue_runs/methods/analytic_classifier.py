"""概率视角下的线性模型：逻辑回归有解析解吗？ (does logistic regression have an analytic solution?)
https://kexue.fm/archives/8578

If every class is Gaussian with a shared covariance Σ, the posterior is softmax(W x + b) with
    w_i = Σ^-1 μ_i,   b_i = ln p_i - ½ μ_i^T Σ^-1 μ_i.
The post whitens first (total covariance = I, mean 0), where Σ = I - Σ_i p_i μ_i μ_i^T (the within-class
covariance); Su's code (bojone/analytical-classification) implements that Σ since 2021-07-29, and only
its first week took Σ = I: a nearest-class-mean classifier, w_i = μ_i, b_i = ln p_i - ½ |μ_i|^2, kept
here as a variant. Both are closed forms: no gradient step.

Covariance convention: the whitening divides by n (ddof 0, as scikit-learn's LDA does), so the total
covariance is exactly I and Σ = I - Σ p_i μ_i μ_i^T is exactly the within-class covariance (also over n).
Su's code whitens with np.cov (ddof 1): his whitened features have total covariance (n-1)/n I, so his
I - Σ p_i μ_i μ_i^T is the within-class covariance plus I/n, a ridge of 1/n (its effect is not measured here).

n < d (or any rank-deficient covariance): the whitening keeps the directions whose eigenvalue exceeds
1e-6 of the largest (a pseudo-inverse square root) and Σ is inverted the same way, as np.linalg.pinv does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RCOND = 1e-6


@dataclass
class Whitening:
    mean: np.ndarray
    matrix: np.ndarray  # x_white = (x - mean) @ matrix

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.matrix


def fit_whitening(x: np.ndarray) -> Whitening:
    """Total covariance to the identity on the directions that have variance (ZCA, pseudo-inverse sqrt).
    Features are put on one scale first (the correlation matrix is decomposed), so the rank cut-off is
    relative to the data's shape, not to its units: wine's proline (variance ~1e5) would otherwise push
    real directions of the small-unit features under 1e-6 of the largest eigenvalue."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    unit = np.where(std > 0, 1 / np.where(std > 0, std, 1), 0.0)
    corr = np.cov((x - mean) * unit, rowvar=False, bias=True)
    values, vectors = np.linalg.eigh(corr)
    keep = values > RCOND * values.max()
    scale = np.zeros_like(values)
    scale[keep] = values[keep] ** -0.5
    return Whitening(mean, unit[:, None] * ((vectors * scale) @ vectors.T))


@dataclass
class LinearClassifier:
    weights: np.ndarray  # (classes, d)
    bias: np.ndarray  # (classes,)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weights.T + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(axis=1)


def class_stats(x: np.ndarray, y: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(priors p_i, class means μ_i) of whitened features; a class absent from y keeps p = 0."""
    counts = np.bincount(y, minlength=classes).astype(float)
    means = np.zeros((classes, x.shape[1]))
    np.add.at(means, y, x)
    means[counts > 0] /= counts[counts > 0, None]
    return counts / counts.sum(), means


def log_prior(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)


def analytic_post(x_white: np.ndarray, y: np.ndarray, classes: int) -> LinearClassifier:
    """The post's formula in whitened space:
    Σ = I - Σ_i p_i μ_i μ_i^T,  w_i = Σ^-1 μ_i,  b_i = ln p_i - ½ μ_i Σ^-1 μ_i."""
    p, mu = class_stats(x_white, y, classes)
    sigma = np.eye(x_white.shape[1]) - (mu * p[:, None]).T @ mu
    inv = np.linalg.pinv(sigma, rcond=RCOND, hermitian=True)
    weights = mu @ inv
    return LinearClassifier(weights, log_prior(p) - 0.5 * np.einsum("id,id->i", weights, mu))


def analytic_su_code(x_white: np.ndarray, y: np.ndarray, classes: int) -> LinearClassifier:
    """Σ = I after whitening (Su's code in its first week, before 2021-07-29): the nearest class mean with a
    log-prior."""
    p, mu = class_stats(x_white, y, classes)
    return LinearClassifier(mu.copy(), log_prior(p) - 0.5 * (mu ** 2).sum(axis=1))
