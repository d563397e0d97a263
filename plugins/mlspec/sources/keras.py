"""`keras:<name>`: a Keras data set (`keras.datasets.<name>`), downloaded on first use."""

from __future__ import annotations

from mlspec.errors import StoreError
from mlspec.sources.kind import Loaded, SourceKind

CLASS_NAMES = {
    "cifar10": tuple("airplane automobile bird cat deer dog frog horse ship truck".split()),
    "fashion_mnist": tuple("t-shirt trouser pullover dress coat sandal shirt sneaker bag ankle-boot".split()),
}


def load_keras(source: str) -> Loaded:
    """Train and test are joined: the spec's own split decides what is held out. keras caches the download
    under ~/.keras/datasets."""
    import keras
    import numpy as np

    name = source.split(":", 1)[1]
    loader = getattr(keras.datasets, name)
    try:
        (x_a, y_a), (x_b, y_b) = loader.load_data()
    except Exception as exc:  # noqa: BLE001 - network or cache failures
        # A StoreError, not a DataError: a download that failed may succeed when the task is retried.
        raise StoreError(
            f"could not load {source}: {exc}; it is downloaded on first use, so the worker needs internet "
            "access or a pre-filled ~/.keras/datasets cache"
        ) from exc
    x = np.concatenate([x_a, x_b]).astype(np.float32)
    y = np.concatenate([np.ravel(y_a), np.ravel(y_b)]).astype(np.int64)
    return x, y, CLASS_NAMES.get(name, tuple(str(i) for i in range(10))), ()


KIND = SourceKind(
    scheme="keras",
    prefix="keras:",
    title="a Keras data set, downloaded on first use",
    next_step=(
        "check data.source in the spec; a keras: data set is downloaded on first use, so the worker needs "
        "internet access or a pre-filled ~/.keras/datasets cache; then clear this task"
    ),
    runs_here=False,
    load_dataset=load_keras,
)
