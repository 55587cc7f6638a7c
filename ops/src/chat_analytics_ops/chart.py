"""The report as a picture: answers per day by match type, and how match scores are spread.

matplotlib is imported here, and only when ``--chart`` is given: it is slow to import and the other
commands do not need it. The Agg backend renders to a file with no display.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import TYPE_CHECKING

from chat_analytics_ops.contract import MATCH_TYPES
from chat_analytics_ops.errors import OpsError
from chat_analytics_ops.report_model import SCORE_BIN_WIDTH, Report

if TYPE_CHECKING:  # the optional extra `chart`: matplotlib is imported when a chart is drawn
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Green, amber, red: the reading everyone already has for good, so-so and missing.
COLORS = {"full": "#2e9d5b", "partial": "#f0a431", "none": "#d9534f"}
LABELS = {"full": "full match", "partial": "partial match", "none": "no match"}
SCORE_BINS = list(range(0, 100 + SCORE_BIN_WIDTH, SCORE_BIN_WIDTH))
ANNOTATE_MAX_DAYS = 31  # totals above the bars; beyond a month they overlap
MAX_TICK_LABELS = 31
# The day axis is never narrower than this many bar slots: one day is a bar of the usual width in
# the middle of the plot, not a block filling it.
MIN_DAY_SLOTS = 7


def check_chart_path(path: Path) -> None:
    """Fail before reading the table, not after, when the chart could not be written."""
    if importlib.util.find_spec("matplotlib") is None:
        raise OpsError("--chart needs matplotlib: pip install 'chat-analytics-ops[chart]'")
    if path.suffix.lower() != ".png":
        raise OpsError(f"--chart writes PNG: give a file name ending in .png, not {path.name!r}")
    if not path.parent.is_dir():
        raise OpsError(f"cannot write the chart: folder {path.parent} does not exist")


def write_chart(report: Report, path: Path) -> Path:
    """Render ``report`` to a PNG at ``path``; returns the path."""
    check_chart_path(path)
    import matplotlib.pyplot as plt

    figure = draw(report)
    try:
        figure.savefig(path, format="png")
    except OSError as error:
        raise OpsError(f"cannot write the chart to {path}: {error.strerror or error}") from None
    finally:
        plt.close(figure)
    return path


def day_limits(days: int) -> tuple[float, float]:
    """The day axis' x limits: bar ``i`` sits at ``i``; fewer than ``MIN_DAY_SLOTS`` days are centred."""
    slots = max(days, MIN_DAY_SLOTS)
    margin = (slots - days) / 2
    return -0.5 - margin, days - 0.5 + margin


def unique_legend_entries(axes: list[Axes]) -> tuple[list[Artist], list[str]]:
    """Handles and labels of ``axes``, each label once (both panels draw the same three match types)."""
    seen: dict[str, Artist] = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            if label and not label.startswith("_"):
                seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def draw(report: Report) -> Figure:
    """The chart's matplotlib ``Figure`` (the caller saves and closes it): answers per day by match type
    on the left, the score distribution on the right, one legend for both below them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, (days_axis, score_axis) = plt.subplots(
        1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1.6, 1]}, layout="constrained", dpi=110
    )
    shares = report.shares
    summary = ", ".join(f"{LABELS[k]} {share * 100:.0f}%" for k in MATCH_TYPES if (share := shares[k]) is not None)
    figure.suptitle(
        f"Chatbot answers {report.start} to {report.end}: {report.queries} questions" + (f" ({summary})" if summary else ""),
        fontsize=13,
        fontweight="bold",
    )

    labels = [day.day[5:] for day in report.per_day]  # MM-DD keeps the axis readable
    positions = range(len(labels))
    bottom = [0] * len(labels)
    few = len(labels) <= ANNOTATE_MAX_DAYS  # thin bars read better without white gaps
    for kind in MATCH_TYPES:
        counts = [day.matches[kind] for day in report.per_day]
        days_axis.bar(
            positions,
            counts,
            bottom=bottom,
            color=COLORS[kind],
            label=LABELS[kind],
            width=0.75 if few else 0.9,
            edgecolor="white" if few else "none",
        )
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    if few:
        for x, total in zip(positions, bottom, strict=True):
            if total:
                days_axis.annotate(str(total), (x, total), ha="center", va="bottom", fontsize=8, color="#444444")
    days_axis.set_title("Answers per day by match type")
    years = report.start[:4] if report.start[:4] == report.end[:4] else f"{report.start[:4]}-{report.end[:4]}"
    days_axis.set_xlabel(f"day (UTC, {years})")
    days_axis.set_ylabel("answers")
    step = max(1, math.ceil(len(labels) / MAX_TICK_LABELS))  # a year of days still has readable ticks
    tick_positions = list(positions)[::step]
    crowded = len(tick_positions) > 10
    days_axis.set_xticks(tick_positions, labels[::step], rotation=45 if crowded else 0, ha="right" if crowded else "center")
    days_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    days_axis.set_xlim(*day_limits(len(labels)))
    days_axis.set_ylim(0, max([*bottom, 1]) * 1.12)  # room for the totals above the bars
    days_axis.grid(axis="y", alpha=0.3)
    days_axis.spines[["top", "right"]].set_visible(False)

    # The report holds answers per 5-point bin (both engines count them alike); each bin is drawn from its centre, weighted.
    centres = [(SCORE_BINS[index] + SCORE_BINS[index + 1]) / 2 for index in range(len(SCORE_BINS) - 1)]
    weights = [report.score_bins[kind] for kind in MATCH_TYPES]
    if any(any(counts) for counts in weights):
        score_axis.hist(
            [centres] * len(MATCH_TYPES),
            bins=SCORE_BINS,
            weights=weights,
            stacked=True,
            color=[COLORS[k] for k in MATCH_TYPES],
            label=[LABELS[k] for k in MATCH_TYPES],
            edgecolor="white",
        )
        average = report.average_score
        if average is not None:
            score_axis.axvline(average, ymax=0.84, color="#333333", linestyle="--", linewidth=1)
            score_axis.annotate(
                f"average {average:.0f}",
                (average, 0.8),
                xycoords=("data", "axes fraction"),
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=9,
            )
        score_axis.set_ylim(0, score_axis.get_ylim()[1] * 1.2)
    else:
        score_axis.text(0.5, 0.5, "no answers in this range", ha="center", va="center", transform=score_axis.transAxes, color="#777777")
    score_axis.set_title("Match score distribution")
    score_axis.set_xlabel("match score (0-100)")
    score_axis.set_ylabel("answers")
    score_axis.set_xlim(0, 100)
    score_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    score_axis.grid(axis="y", alpha=0.3)
    score_axis.spines[["top", "right"]].set_visible(False)

    handles, names = unique_legend_entries([days_axis, score_axis])
    figure.legend(handles, names, loc="outside lower center", frameon=False, ncols=len(names))
    return figure
