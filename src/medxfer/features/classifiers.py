"""The classical-classifier registry: each name is a Pipeline ``StandardScaler -> [PCA] -> estimator``.

A classifier registers an unfitted-estimator factory, a small hyper-parameter grid (searched by
:func:`medxfer.features.classical.fit_classifier`), a default PCA size and a search budget::

    @register_classifier("logreg", {"C": [0.01, 0.1]})
    def _logreg(seed): ...

Estimator libraries are imported when a classifier is built, not at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medxfer.registry import Registry, first_line


@dataclass
class ClassifierSpec:
    """A registered classifier: estimator factory, grid, default PCA size, search budget."""

    name: str
    build: Callable[[int], Any]  # seed -> unfitted estimator
    grid: dict[str, list[Any]]  # keys without the "clf__" prefix
    pca: int | None = None  # default PCA components (None: no PCA)
    n_iter: int | None = None  # RandomizedSearch budget (None: full grid)
    description: str = ""


CLASSIFIERS: Registry[ClassifierSpec] = Registry("classifier")


def register_classifier(
    name: str, grid: dict[str, list[Any]], pca: int | None = None, n_iter: int | None = None
) -> Callable[[Callable[[int], Any]], Callable[[int], Any]]:
    """Decorator: register ``fn(seed) -> estimator`` under ``name`` (a name already taken is refused);
    its docstring's first line describes it."""

    def deco(fn: Callable[[int], Any]) -> Callable[[int], Any]:
        CLASSIFIERS.register(name, ClassifierSpec(name, fn, grid, pca, n_iter, first_line(fn.__doc__)))
        return fn

    return deco


def list_classifiers() -> list[str]:
    """Names accepted by ``--classifiers``, sorted."""
    return CLASSIFIERS.names()


@register_classifier("logreg", {"C": [0.003, 0.01, 0.03, 0.1, 0.3]})
def _logreg(seed: int) -> Any:
    """Logistic regression (balanced classes)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=3000, class_weight="balanced", random_state=seed)


@register_classifier("svm", {"C": [0.3, 1.0, 3.0], "gamma": ["scale"]}, pca=256)
def _svm(seed: int) -> Any:
    """RBF support vector machine on 256 PCA components, calibrated."""
    from sklearn.svm import SVC

    # AUC during the search uses decision_function; the final fit is calibrated (see fit_classifier).
    return SVC(kernel="rbf", class_weight="balanced", random_state=seed)


@register_classifier("rf", {"max_features": ["sqrt", 0.05], "min_samples_leaf": [1, 3]})
def _rf(seed: int) -> Any:
    """Random forest, 200 trees."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=200, class_weight="balanced", n_jobs=2, random_state=seed)


@register_classifier("knn", {"n_neighbors": [7, 15, 31], "weights": ["uniform", "distance"]}, pca=64)
def _knn(seed: int) -> Any:
    """k nearest neighbours on 64 PCA components."""
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier()


@register_classifier("gboost", {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]}, pca=64)
def _gboost(seed: int) -> Any:
    """Histogram gradient boosting on 64 PCA components."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=150, class_weight="balanced", early_stopping=False, random_state=seed
    )


def parse_classifiers(text: str) -> list[str]:
    """``"logreg,svm"`` -> names; ``all`` for every registered one. Raises ValueError naming valid choices."""
    valid = CLASSIFIERS.names()
    names = valid if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in CLASSIFIERS]
    if bad or not names:
        raise ValueError(f"unknown classifier(s) {bad or text!r}; valid: {', '.join(valid)} or all")
    return names


def make_pipeline(name: str, pca: int | None, seed: int, n_features: int) -> Any:
    """``StandardScaler -> [PCA] -> classifier`` (PCA capped to the feature count)."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps: list[tuple[str, Any]] = [("scale", StandardScaler())]
    if pca:
        steps.append(("pca", PCA(n_components=min(pca, n_features), random_state=seed)))
    steps.append(("clf", CLASSIFIERS.get(name).build(seed)))
    return Pipeline(steps)
