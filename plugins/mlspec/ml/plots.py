"""The evaluation plots every published version carries, as PNG bytes (headless matplotlib).

* ``confusion_matrix.png`` (classification): test counts, rows the true class, columns the predicted
  one, labelled with the data set's class names;
* ``residuals.png`` (regression): a histogram of the test residuals (true - predicted) beside
  predicted against true with the line of perfect predictions;
* ``training_curves.png``: train's per-step history (Keras: loss, accuracy and their ``val_*`` per
  epoch; scikit-learn: per-stage loss or per-iteration scores), losses and scores in separate panels;
  an estimator fitted in one step has one point per score, drawn as bars (train beside validation);
* ``drift.png`` (validate_data, issue 14): this run's training data against the reference version's
  profile, one panel per drifted column (else the columns closest to drifting): overlaid histograms for
  numbers, side by side shares of the most frequent values for categories.

matplotlib is imported inside the functions (DAG parsing stays light) and only its Agg canvas is used:
no pyplot, no GUI backend, no global figure state, so it is safe in workers and threads. The PNGs are
deterministic (no software/date metadata), so a retried evaluate writes the very same bytes and a
retried store publishes the same checksums.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlspec.ml.drift import DRIFT_CHECKS
from mlspec.ml.profile import category_counts, is_numeric, numeric_values
from mlspec.vocabulary import DRIFT_NEW_ROWS_CHECK, P_VALUE_TESTS

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

CONFUSION_MATRIX = "confusion_matrix.png"
RESIDUALS = "residuals.png"
TRAINING_CURVES = "training_curves.png"
PLOT_NAMES = (CONFUSION_MATRIX, RESIDUALS, TRAINING_CURVES)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

DPI = 100
# Above this many classes the cells are too small for their counts to be written into them.
MAX_ANNOTATED_CLASSES = 30
# Above this many classes the axes carry no class names (each is a text object to lay out and draw) ...
MAX_LABELLED_CLASSES = 60
# ... and above this many no heat map is drawn at all: the image of k x k cells is k² RGBA floats (10,000
# classes: 3.2 GB). evaluate publishes the version without the plot.
MAX_PLOTTED_CLASSES = 1_000
# Predicted-vs-true draws at most this many points (evenly spaced picks): a plot, not a data dump.
MAX_SCATTER_POINTS = 5000
# The drift plot draws at most this many columns, and at most this many values of a category column.
MAX_DRIFT_PANELS = 6
MAX_DRIFT_CATEGORIES = 10
_TRAIN_COLOR, _VAL_COLOR = "#1a73e8", "#e8710a"
_PALETTE = ("#1a73e8", "#e8710a", "#188038", "#9334e6", "#d93025", "#007b83", "#b06000", "#5f6368")


class PlotError(ValueError):
    """What was asked for cannot be drawn (wrong shapes, nothing to plot)."""


# -- the plots --------------------------------------------------------------------------------
def confusion_matrix_png(matrix: Sequence[Sequence[int]], class_names: Sequence[str], *, title: str = "") -> bytes:
    """A heat map of the counts; rows are true classes, columns predicted ones, in class_names order."""
    k = len(class_names)
    if k > MAX_PLOTTED_CLASSES:
        raise PlotError(f"{k:,} classes are too many for a confusion matrix plot (at most {MAX_PLOTTED_CLASSES:,})")
    counts = np.asarray(matrix, dtype=np.int64)
    if counts.ndim != 2 or counts.shape != (k, k):
        raise PlotError(f"a confusion matrix of {k} classes must be {k}x{k}, not {list(counts.shape)}")
    names = [_short(str(name), 18) for name in class_names]
    side = min(max(4.8, 0.45 * k + 2.5), 14.0)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(counts, cmap="Blues", interpolation="nearest", vmin=0, vmax=max(int(counts.max()), 1))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if k <= MAX_LABELLED_CLASSES:
        rotation = 45 if max((len(n) for n in names), default=0) > 3 else 0
        ax.set_xticks(range(k), labels=names, rotation=rotation, ha="right")
        ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(counts.sum())
    correct = int(np.trace(counts))
    accuracy = f"; accuracy {correct / total:.3f}" if total else ""
    ax.set_title(title or f"Confusion matrix ({total} test samples{accuracy})")
    if k <= MAX_ANNOTATED_CLASSES:
        threshold = counts.max() / 2 if counts.size else 0
        for row in range(k):
            for col in range(k):
                ax.text(
                    col, row, str(int(counts[row, col])), ha="center", va="center", fontsize=9 if k <= 12 else 7,
                    color="white" if counts[row, col] > threshold else "black",
                )
    return _png(fig)


def residuals_png(y_true: Any, y_pred: Any, *, title: str = "") -> bytes:
    """Residuals (true - predicted) as a histogram, beside predicted against true."""
    true = _column(y_true, "true values")
    pred = _column(y_pred, "predictions")
    if len(true) != len(pred) or not len(true):
        raise PlotError(f"{len(true)} true values and {len(pred)} predictions: nothing to compare")
    keep = np.isfinite(true) & np.isfinite(pred)
    true, pred = true[keep], pred[keep]
    if not len(true):
        raise PlotError("no finite pair of true value and prediction to plot")
    residuals = true - pred
    fig = _figure(11.0, 4.6)
    hist = fig.add_subplot(1, 2, 1)
    bins = min(30, max(5, int(math.sqrt(len(residuals)))))
    low, high = float(residuals.min()), float(residuals.max())
    if high - low <= 1e-9 * max(1.0, abs(low), abs(high)):  # (nearly) one value: a bar around it
        low, high = low - 0.5, high + 0.5
    hist.hist(residuals, bins=bins, range=(low, high), color=_TRAIN_COLOR, edgecolor="white")
    hist.axvline(0.0, color="#202124", linewidth=1)
    hist.set_xlabel("residual (true - predicted)")
    hist.set_ylabel("test samples")
    hist.set_title(f"Residuals: mean {residuals.mean():.4g}, std {residuals.std():.4g}")
    scatter = fig.add_subplot(1, 2, 2)
    picks = _evenly(len(true), MAX_SCATTER_POINTS)
    scatter.scatter(true[picks], pred[picks], s=12, alpha=0.6, color=_TRAIN_COLOR, edgecolors="none")
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    scatter.plot([low, high], [low, high], color="#d93025", linewidth=1, label="predicted = true")
    scatter.set_xlabel("true value")
    scatter.set_ylabel("predicted value")
    scatter.set_title(title or f"Predicted vs true ({len(true)} test samples)")
    scatter.legend(loc="upper left", fontsize=8)
    return _png(fig)


def training_curves_png(history: Mapping[str, Sequence[float]], *, step_name: str = "step", title: str = "") -> bytes | None:
    """train's per-step curves: losses in one panel, scores in another; None when there is no curve.

    `history` maps a curve's name (loss, val_loss, accuracy, val_accuracy, train_score, ...) to one value
    per step. A validation curve (``val_<name>``) is drawn dashed in its training curve's panel. When every
    curve has a single point (an estimator fitted in one step) the values are drawn as bars instead.
    """
    curves = {str(name): [_finite(v) for v in values] for name, values in (history or {}).items() if values}
    curves = {name: values for name, values in curves.items() if any(v is not None for v in values)}
    if not curves:
        return None
    if all(len(values) == 1 for values in curves.values()):
        return _scores_png(curves, title=title)
    panels = [group for group in (_losses(curves), _scores(curves)) if group]
    fig = _figure(5.6 * len(panels) + 0.6, 4.4)
    for index, (heading, names) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), index)
        for color_index, base in enumerate(_bases(names)):
            color = _PALETTE[color_index % len(_PALETTE)]
            for name, style in ((base, "-"), (f"val_{base}", "--")):
                if name in names:
                    values = curves[name]
                    steps = range(1, len(values) + 1)
                    ys = [np.nan if v is None else v for v in values]
                    ax.plot(steps, ys, linestyle=style, color=color, label=name, marker="o" if len(values) <= 12 else None, markersize=3)
        ax.set_xlabel(step_name)
        ax.set_ylabel(heading)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title or f"Training curves ({max(len(v) for v in curves.values())} {step_name}s)")
    return _png(fig)


def evaluation_plots(
    task: str,
    y_true: Any,
    outputs: Mapping[str, Any],
    results: Mapping[str, Any],
    *,
    class_names: Sequence[str] = (),
    history: Mapping[str, Sequence[float]] | None = None,
    step_name: str = "step",
) -> dict[str, bytes]:
    """Every plot that fits the task: file name -> PNG bytes.

    `results` is `metrics.compute_metrics`'s result (its "confusion_matrix" for classification),
    `outputs` the model's answers on the test split ("prediction" for regression), `history` train's
    per-step curves (omitted when empty).
    """
    plots: dict[str, bytes] = {}
    if task == "classification":
        plots[CONFUSION_MATRIX] = confusion_matrix_png(results["confusion_matrix"], class_names)
    else:
        plots[RESIDUALS] = residuals_png(y_true, outputs["prediction"])
    curves = training_curves_png(history or {}, step_name=step_name)
    if curves is not None:
        plots[TRAINING_CURVES] = curves
    return plots


def drift_plot(
    report_json: Mapping[str, Any],
    reference: Mapping[str, Any],
    frame: Any,
    *,
    new_rows: Any = None,
    rows_word: str = "training rows",
    label: str = "this run",
) -> bytes:
    """drift.png: for each drifted column of a drift report (drift.json's content; when none drifted, the
    columns closest to drifting), at most MAX_DRIFT_PANELS, the reference profile's values beside this data's:
    overlaid histograms of the reference sample and this data's numbers, or the shares of the most frequent
    categories. `rows_word` names this data's rows in the title and `label` this data in the legends (`mlspec
    drift`: "logged rows", "logged").
    A column that drifted on its new rows only is drawn with those rows when `new_rows` (the mask given to
    drift.compare) is given. The title names the reference version. Odd data (no values, text in a number
    column, a column the frame or the profile lacks) draws a note in its panel instead of raising."""
    known = {str(e.get("name")): e for e in reference.get("columns") or () if isinstance(e, Mapping)}
    available = set(getattr(frame, "columns", ()))
    picked = [row for row in _drift_rows_to_draw(report_json) if row["column"] in known.keys() & available]
    version = (report_json.get("reference") or {}).get("version")
    against = f"version {version}" if version is not None else "the reference"
    rows = _finite((report_json.get("current") or {}).get("rows"))
    reference_rows = _finite(reference.get("rows"))
    title = f"Data drift: {rows or 0:,.0f} {rows_word} against {against} ({reference_rows or 0:,.0f} rows)"
    if not picked:
        fig = _figure(7.0, 2.4)
        fig.suptitle(title, fontsize=10, wrap=True)
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, "no column was compared", ha="center", va="center")
        return _png(fig)
    across = min(3, len(picked))
    down = math.ceil(len(picked) / across)
    # A fixed grid rather than the constrained layout: laying out each panel's labels would double the time.
    width, height = 4.6 * across, 3.6 * down + 0.6
    fig = _figure(width, height, layout=None)
    fig.subplots_adjust(left=0.9 / width, right=0.98, bottom=0.5 / height, top=1 - 0.6 / height, wspace=0.45,
                        hspace=0.45)
    fig.suptitle(title, fontsize=10, wrap=True)  # a one-panel figure is narrower than the title
    for index, row in enumerate(picked, start=1):
        ax = fig.add_subplot(down, across, index)
        entry = known[row["column"]]
        try:
            values = frame[row["column"]]
            subset = row.get("check") == DRIFT_NEW_ROWS_CHECK and new_rows is not None
            if subset:
                values = values[np.asarray(new_rows, dtype=bool)]
            draw = _numbers_panel if is_numeric(entry.get("type")) else _categories_panel
            draw(ax, entry, values, "new rows" if subset else label)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
            ax.clear()
            ax.axis("off")
            ax.text(0.5, 0.5, _short(f"not drawn: {error}", 60), ha="center", va="center", fontsize=8)
        score = row.get("score")
        verdict = "drifted" if row.get("drifted") else "no drift"
        scored = f"{row.get('test')} {score:.3g}" if isinstance(score, int | float) else "not scored"
        on = " (new rows)" if row.get("check") == DRIFT_NEW_ROWS_CHECK else ""
        ax.set_title(f"{_short(row['column'], 28)}{on}: {scored}, {verdict}", fontsize=9,
                     color="#d93025" if row.get("drifted") else "#202124")
    return _png(fig)


def _drift_rows_to_draw(report_json: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """One drift row per column, the one furthest past its threshold (of DRIFT_CHECKS): the
    drifted columns', most drifted first; when none drifted, every column's, closest to drifting first. At
    most MAX_DRIFT_PANELS."""
    worst: dict[str, Mapping[str, Any]] = {}
    for row in report_json.get("rows") or ():
        if not (isinstance(row, Mapping) and row.get("check") in DRIFT_CHECKS):
            continue
        column = row.get("column")
        if isinstance(column, str) and (column not in worst or _severity(row) > _severity(worst[column])):
            worst[column] = row
    shown = [row for row in worst.values() if row.get("drifted") is True] or list(worst.values())
    return sorted(shown, key=_severity, reverse=True)[:MAX_DRIFT_PANELS]


def _severity(row: Mapping[str, Any]) -> float:
    """How far past (above 1) or short of (below 1) its threshold a score is: p-values drift low, distances
    high."""
    score, threshold = _finite(row.get("score")), _finite(row.get("threshold"))
    if score is None or not threshold:
        return 0.0
    if row.get("test") in P_VALUE_TESTS:
        return threshold / max(score, 1e-300)
    return score / threshold


def _numbers_panel(ax: Any, entry: Mapping[str, Any], values: Any, current: str) -> None:
    before = np.asarray(entry.get("sample") or (), dtype=np.float64)
    before = before[np.isfinite(before)]
    after = numeric_values(values)
    after = after[np.isfinite(after)]
    if not before.size and not after.size:
        raise ValueError("no values on either side")
    both = np.concatenate([before, after])
    low, high = float(both.min()), float(both.max())
    if high - low <= 1e-9 * max(1.0, abs(low), abs(high)):
        low, high = low - 0.5, high + 0.5
    for data, color, label in ((before, _TRAIN_COLOR, "reference"), (after, _VAL_COLOR, current)):
        if data.size:
            ax.hist(data, bins=30, range=(low, high), density=True, alpha=0.55, color=color,
                    histtype="stepfilled", label=f"{label} ({data.size:,} values)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)


def _categories_panel(ax: Any, entry: Mapping[str, Any], values: Any, current: str) -> None:
    before = {str(key): float(count) for key, count in (entry.get("frequencies") or {}).items()}
    if entry.get("other"):
        before["(other)"] = float(entry["other"])
    after = {str(key): float(count) for key, count in category_counts(values).items()}
    if not sum(before.values()) and not sum(after.values()):
        raise ValueError("no values on either side")
    before_total, after_total = sum(before.values()) or 1.0, sum(after.values()) or 1.0
    keys = list(dict.fromkeys([*before, *after]))
    keys.sort(key=lambda k: max(before.get(k, 0) / before_total, after.get(k, 0) / after_total), reverse=True)
    keys = keys[:MAX_DRIFT_CATEGORIES]
    positions = np.arange(len(keys))
    width = 0.4
    ax.barh(positions - width / 2, [100 * before.get(k, 0) / before_total for k in keys], height=width,
            color=_TRAIN_COLOR, label="reference")
    ax.barh(positions + width / 2, [100 * after.get(k, 0) / after_total for k in keys], height=width,
            color=_VAL_COLOR, label=current)
    ax.set_yticks(positions, labels=[_short(key, 18) for key in keys], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("% of rows with a value")
    ax.legend(fontsize=7)


# -- helpers ----------------------------------------------------------------------------------
def _figure(width: float, height: float, *, layout: str | None = "constrained") -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    # No "Software" (matplotlib's version) nor date: the same plot is the same bytes.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _scores_png(curves: Mapping[str, list[float | None]], *, title: str) -> bytes:
    names = list(curves)
    bases = _bases(names)
    fig = _figure(max(5.0, 1.6 * len(bases) + 2.5), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.38
    for offset, prefix, color, label in ((-width / 2, "", _TRAIN_COLOR, "training"), (width / 2, "val_", _VAL_COLOR, "validation")):
        xs, ys = [], []
        for index, base in enumerate(bases):
            value = curves.get(f"{prefix}{base}", [None])[0]
            if value is not None:
                xs.append(index + offset)
                ys.append(value)
        if xs:
            bars = ax.bar(xs, ys, width=width, color=color, label=label)
            ax.bar_label(bars, fmt="%.4g", fontsize=8, padding=2)
    ax.set_xticks(range(len(bases)), labels=bases)
    ax.set_xlim(-0.9, len(bases) - 0.1)
    ax.set_ylabel("score after fitting")
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    ax.set_title(title or "Training scores (fitted in one step: no per-step curve)")
    return _png(fig)


def _losses(curves: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    names = [n for n in curves if "loss" in n]
    return ("loss", names) if names else None


def _scores(curves: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    names = [n for n in curves if "loss" not in n]
    return ("score", names) if names else None


def _bases(names: Sequence[str]) -> list[str]:
    """Curve names without their val_ prefix, in first-seen order (train and validation share a colour)."""
    seen: list[str] = []
    for name in names:
        base = name.removeprefix("val_")
        if base not in seen:
            seen.append(base)
    return seen


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _column(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise PlotError(f"{what} have shape {list(array.shape)}; expected one number per sample")
    return array


def _evenly(count: int, most: int) -> np.ndarray:
    if count <= most:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, most).round().astype(np.int64))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
