"""`builtin:<name>`: a data set bundled with scikit-learn (`sklearn.datasets.load_<name>`), offline."""

from __future__ import annotations

from mlspec.sources.kind import Loaded, SourceKind
from mlspec.vocabulary import DATA_SOURCES


def load_builtin(source: str) -> Loaded:
    """Features are raw: builtin:diabetes is the unscaled table (age in years, bmi, ...), what an endpoint
    is sent."""
    import numpy as np
    from sklearn import datasets

    loader = getattr(datasets, "load_" + source.split(":", 1)[1])
    regression = DATA_SOURCES[source].task == "regression"
    bunch = loader(scaled=False) if source == "builtin:diabetes" else loader()
    x = np.asarray(bunch.data, dtype=np.float32)
    feature_names = tuple(str(n) for n in getattr(bunch, "feature_names", ()))
    if regression:
        return x, np.asarray(bunch.target, dtype=np.float32), (), feature_names
    y = np.asarray(bunch.target, dtype=np.int64)
    class_names = tuple(str(n) for n in bunch.target_names)
    return x, y, class_names, feature_names


KIND = SourceKind(
    scheme="builtin",
    prefix="builtin:",
    title="a data set bundled with scikit-learn",
    next_step="check data.source in the spec (a builtin: data set is read offline), then clear this task",
    runs_here=True,
    load_dataset=load_builtin,
)
