"""One self-contained HTML page for an evaluation: summary, plots, and a sortable table of utterances with audio and
word-level diffs. Everything is inline (CSS, JS, plots as base64 PNG), so the file opens offline and can be mailed.

The page is the Jinja2 template templates/report.html.j2 (with report.css and report.js), autoescaped: this module
only gathers the values it shows.
"""

from __future__ import annotations

import base64
import io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import soundfile
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.figure import Figure

from audiograft.audio.io import SAMPLE_RATE, AudioError, load_audio
from audiograft.evaluation.metrics import (
    TIMESTAMP_TOLERANCES_MS,
    AlignmentOp,
    EvaluationResult,
    UtteranceScore,
    judged_words,
    subsets,
    wer_by_duration,
)
from audiograft.files import write_text_atomically

logger = logging.getLogger(__name__)

AudioMode = Literal["embed", "link", "none"]
DEFAULT_EMBED_LIMIT_BYTES = 20 * 1024 * 1024
GRAFT_COLOUR = "#2563eb"
BASELINE_COLOUR = "#94a3b8"
CORRECT_COLOUR = "#16a34a"
INCORRECT_COLOUR = "#dc2626"
_TEMPLATES = Environment(
    loader=PackageLoader("audiograft.evaluation", "templates"), autoescape=True, undefined=StrictUndefined
)


def write_report(
    result: EvaluationResult,
    path: str | Path,
    baseline: EvaluationResult | None = None,
    *,
    audio: AudioMode = "link",
    embed_limit_bytes: int = DEFAULT_EMBED_LIMIT_BYTES,
    title: str | None = None,
) -> Path:
    """Writes the report to `path`. `baseline` defaults to `result.baseline`.

    audio="embed" inlines each clip as Opus (about 4 kB a second) until `embed_limit_bytes` is spent, then falls back
    to links; "link" points at the clip relative to the report; "none" leaves the players out.
    """
    path = Path(path)
    baseline = baseline or result.baseline
    sources = _audio_sources(result.utterances, path.parent, audio, embed_limit_bytes)
    title = title or f"audiograft evaluation — {result.model or 'model'}"
    page = _TEMPLATES.get_template("report.html.j2").render(
        title=title,
        facts=_facts(result, baseline),
        has_baseline=baseline is not None,
        cards=_cards(result, baseline),
        metrics=_metric_rows(result, baseline),
        plots=_plots(result, baseline),
        rows=_rows(result, baseline, sources),
        skipped=_skipped(result, baseline),
    )
    write_text_atomically(path, page)
    logger.info("wrote report %s (%.1f kB)", path, path.stat().st_size / 1024)
    return path


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _number(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


# ---- audio -------------------------------------------------------------------------------------------------------


def _embedded(audio: str) -> str:
    buffer = io.BytesIO()
    soundfile.write(buffer, load_audio(audio), SAMPLE_RATE, format="OGG", subtype="OPUS")
    return "data:audio/ogg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _linked(audio: str, report_dir: Path) -> str:
    relative = os.path.relpath(Path(audio).resolve(), report_dir.resolve())
    return quote(Path(relative).as_posix())


def _audio_sources(
    utterances: Sequence[UtteranceScore], report_dir: Path, mode: AudioMode, embed_limit_bytes: int
) -> dict[str, str]:
    """Utterance id -> the audio element's src."""
    if mode == "none":
        return {}
    sources, embedded_bytes, over_limit = {}, 0, 0
    for utterance in utterances:
        if utterance.audio is None:
            continue
        if mode == "embed" and not over_limit:
            try:
                source = _embedded(utterance.audio)
            except AudioError as error:
                logger.warning("no audio player for %s: %s", utterance.id, error)
                continue
            if embedded_bytes + len(source) <= embed_limit_bytes:
                sources[utterance.id] = source
                embedded_bytes += len(source)
                continue
        # Past the limit every later clip is linked, so a report never encodes clips it will not embed.
        over_limit += mode == "embed"
        sources[utterance.id] = _linked(utterance.audio, report_dir)
    if over_limit:
        logger.warning("audio embedding limit of %d bytes reached: %d clips are linked", embed_limit_bytes, over_limit)
    return sources


# ---- header and summary ------------------------------------------------------------------------------------------


def _facts(result: EvaluationResult, baseline: EvaluationResult | None) -> list[str]:
    facts = [
        f"{len(result.utterances)} utterances",
        f"{result.speed.audio_seconds / 60:.1f} min of audio",
        f"device {result.speed.device or '—'}",
        f"batch size {result.speed.batch_size}",
    ]
    if baseline:
        facts.append(f"baseline: {baseline.model or 'baseline'}")
    return facts


@dataclass(frozen=True)
class _Metric:
    label: str
    value: Callable[[EvaluationResult], float | int | str | None]
    show: Callable[[float | int | str | None], str]
    lower_is_better: bool | None  # None: a fact to compare, not a score


def _timestamp(getter: Callable) -> Callable[[EvaluationResult], float | None]:
    return lambda result: getter(result.timestamps) if result.timestamps else None


_METRICS = [
    _Metric("Word error rate", lambda r: r.wer, _percent, True),
    _Metric("Character error rate", lambda r: r.cer, _percent, True),
    _Metric("Substitutions", lambda r: r.accuracy.substitutions, lambda v: _number(v, 0), True),
    _Metric("Deletions", lambda r: r.accuracy.deletions, lambda v: _number(v, 0), True),
    _Metric("Insertions", lambda r: r.accuracy.insertions, lambda v: _number(v, 0), True),
    _Metric("Hallucination rate", lambda r: r.failures.hallucination_rate, _percent, True),
    _Metric("Loop rate", lambda r: r.failures.loop_rate, _percent, True),
    _Metric("Empty-output rate", lambda r: r.failures.empty_rate, _percent, True),
    _Metric("RTFx (audio s / wall s)", lambda r: r.rtfx, lambda v: _number(v, 1, "×"), False),
    _Metric("Audio", lambda r: r.speed.audio_seconds, lambda v: _number(v, 1, " s"), None),
    _Metric("Wall time", lambda r: r.speed.wall_seconds, lambda v: _number(v, 1, " s"), None),
    _Metric("Timestamp MAE", _timestamp(lambda t: t.mae_ms), lambda v: _number(v, 1, " ms"), True),
    *(
        _Metric(f"Timestamps within {ms} ms", _timestamp(lambda t, ms=ms: t.share_within(ms)), _percent, False)
        for ms in TIMESTAMP_TOLERANCES_MS
    ),
    _Metric("Confidence ECE", lambda r: r.confidence_ece, lambda v: _number(v, 3), True),
    _Metric("Utterances scored", lambda r: len(r.utterances), lambda v: _number(v, 0), None),
    _Metric("Utterances skipped", lambda r: len(r.skipped), lambda v: _number(v, 0), None),
    _Metric("Device", lambda r: r.speed.device or "—", str, None),
    _Metric("Batch size", lambda r: r.speed.batch_size, str, None),
]
_HEADLINE = ["Word error rate", "Character error rate", "RTFx (audio s / wall s)", "Hallucination rate"]


def _verdict(metric: _Metric, value: object, other: object) -> str:
    """CSS class saying whether `value` beats `other` on this metric."""
    if metric.lower_is_better is None or not isinstance(value, int | float) or not isinstance(other, int | float):
        return ""
    if value == other:
        return ""
    return "better" if (value < other) == metric.lower_is_better else "worse"


def _cards(result: EvaluationResult, baseline: EvaluationResult | None) -> list[dict[str, Any]]:
    """The headline metrics, each with the baseline's value and whether the graft beats it."""
    by_label = {metric.label: metric for metric in _METRICS}
    return [_compared(by_label[label], result, baseline) for label in _HEADLINE]


def _metric_rows(result: EvaluationResult, baseline: EvaluationResult | None) -> list[dict[str, Any]]:
    return [_compared(metric, result, baseline) for metric in [*_METRICS, *_subset_metrics(result)]]


def _subset_metrics(result: EvaluationResult) -> list[_Metric]:
    """WER and CER of each subset (language, short and long clips) the graft has clips in, found by label in
    either system."""
    def of(label: str, field: str) -> Callable[[EvaluationResult], float | None]:
        return lambda r: next((getattr(s, field) for s in subsets(r.utterances) if s.label == label), None)

    return [
        _Metric(f"{name}, {subset.label} (n={subset.n_utterances})", of(subset.label, field), _percent, True)
        for subset in subsets(result.utterances)
        if subset.n_utterances
        for name, field in (("WER", "wer"), ("CER", "cer"))
    ]


def _compared(metric: _Metric, result: EvaluationResult, baseline: EvaluationResult | None) -> dict[str, Any]:
    value = metric.value(result)
    other = metric.value(baseline) if baseline else None
    return {
        "label": metric.label,
        "value": metric.show(value),
        "baseline": metric.show(other) if baseline else None,
        "verdict": _verdict(metric, value, other) if baseline else "",
    }


# ---- plots -------------------------------------------------------------------------------------------------------


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=144, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _styled_axes(figure: Figure, count: int = 1):
    axes = figure.subplots(1, count, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
        ax.set_axisbelow(True)
    return axes


def _wer_by_duration_plot(result: EvaluationResult, baseline: EvaluationResult | None) -> str | None:
    systems = [("graft", result, GRAFT_COLOUR)] + ([("baseline", baseline, BASELINE_COLOUR)] if baseline else [])
    buckets = {name: wer_by_duration(system.utterances) for name, system, _ in systems}
    shown = [i for i, bucket in enumerate(buckets["graft"]) if any(b[i].n_utterances for b in buckets.values())]
    if not shown:
        return None
    figure = Figure(figsize=(6.4, 3.4))
    (ax,) = _styled_axes(figure)
    width = 0.8 / len(systems)
    for offset, (name, _, colour) in enumerate(systems):
        positions = [i + (offset - (len(systems) - 1) / 2) * width for i in range(len(shown))]
        heights = [100 * (buckets[name][i].wer or 0.0) for i in shown]
        bars = ax.bar(positions, heights, width * 0.92, color=colour, label=name)
        counts = [f"n={buckets[name][i].n_utterances}" for i in shown]
        ax.bar_label(bars, labels=counts, fontsize=7, color="#6b7280", padding=2)
    ax.set_xticks(range(len(shown)), [buckets["graft"][i].label for i in shown])
    ax.set_ylabel("WER (%)")
    ax.set_title("WER by clip duration", loc="left", fontsize=11)
    ax.margins(y=0.15)
    if baseline:
        ax.legend(frameon=False, fontsize=8)
    return _png(figure)


def _confidence_plot(result: EvaluationResult, baseline: EvaluationResult | None) -> str | None:
    systems = [
        (name, system)
        for name, system in [("graft", result), ("baseline", baseline)]
        if system is not None and system.confidence_ece is not None
    ]
    if not systems:
        return None
    figure = Figure(figsize=(6.4 if len(systems) == 1 else 9.6, 3.4))
    for ax, (name, system) in zip(_styled_axes(figure, len(systems)), systems, strict=True):
        words = judged_words(system.utterances)
        ax.hist(
            [[w.confidence for w in words if w.correct], [w.confidence for w in words if not w.correct]],
            bins=20,
            range=(0.0, 1.0),
            stacked=True,
            color=[CORRECT_COLOUR, INCORRECT_COLOUR],
            label=["correct", "wrong"],
        )
        ax.set_xlabel("word confidence")
        ax.set_ylabel("words")
        ax.set_title(f"{name}: confidence (ECE {system.confidence_ece:.3f})", loc="left", fontsize=11)
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    return _png(figure)


def _plots(result: EvaluationResult, baseline: EvaluationResult | None) -> list[dict[str, str]]:
    plots = [
        ("WER by clip duration", _wer_by_duration_plot(result, baseline)),
        ("Word confidence histogram", _confidence_plot(result, baseline)),
    ]
    return [{"alt": alt, "source": source} for alt, source in plots if source is not None]


# ---- utterance table ---------------------------------------------------------------------------------------------

def _transcript_cell(utterance: UtteranceScore | None) -> dict[str, Any] | None:
    """One system's WER and word diff of an utterance; None where that system did not score it."""
    if utterance is None:
        return None
    flags = {"hallucination": utterance.hallucination, "loop": utterance.loop, "empty": utterance.empty}
    return {
        "wer": utterance.wer,
        "wer_shown": _percent(utterance.wer),
        "title": f"reference: {utterance.reference}\nhypothesis: {utterance.hypothesis}",
        "ops": [_diff_op(op) for op in utterance.alignment],
        "flags": [name for name, raised in flags.items() if raised],
    }


def _diff_op(op: AlignmentOp) -> dict[str, str]:
    return {"op": op.op, "reference": " ".join(op.reference), "hypothesis": " ".join(op.hypothesis)}


def _rows(
    result: EvaluationResult, baseline: EvaluationResult | None, sources: dict[str, str]
) -> list[dict[str, Any]]:
    baseline_by_id = {u.id: u for u in baseline.utterances} if baseline else {}
    rows = []
    for utterance in result.utterances:
        other = baseline_by_id.get(utterance.id)
        delta = utterance.wer - other.wer if other else None
        rows.append({
            "id": utterance.id,
            "duration": utterance.duration,
            "source": sources.get(utterance.id),
            "graft": _transcript_cell(utterance),
            "baseline": _transcript_cell(other),
            "delta": delta,
            "delta_verdict": "" if not delta else "worse" if delta > 0 else "better",
            "delta_shown": "—" if delta is None else f"{100 * delta:+.1f} pts",
        })
    return rows


def _skipped(result: EvaluationResult, baseline: EvaluationResult | None) -> list[dict[str, str | None]]:
    systems = [("graft", result)] + ([("baseline", baseline)] if baseline else [])
    return [
        {"system": name, "id": skip.id, "audio": skip.audio, "error": skip.error}
        for name, system in systems
        for skip in system.skipped
    ]
