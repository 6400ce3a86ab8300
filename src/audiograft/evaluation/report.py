"""One self-contained HTML page for an evaluation: summary, plots, and a sortable table of utterances with audio and
word-level diffs. Everything is inline (CSS, JS, plots as base64 PNG), so the file opens offline and can be mailed."""

from __future__ import annotations

import base64
import html
import io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import soundfile
from matplotlib.figure import Figure

from audiograft.audio.io import SAMPLE_RATE, AudioError, load_audio
from audiograft.evaluation.metrics import (
    AlignmentOp,
    EvaluationResult,
    UtteranceScore,
    judged_words,
    wer_by_duration,
)

logger = logging.getLogger(__name__)

AudioMode = Literal["embed", "link", "none"]
DEFAULT_EMBED_LIMIT_BYTES = 20 * 1024 * 1024
GRAFT_COLOUR = "#2563eb"
BASELINE_COLOUR = "#94a3b8"
CORRECT_COLOUR = "#16a34a"
INCORRECT_COLOUR = "#dc2626"


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
    cards, metrics = _summary_html(result, baseline)
    page = _PAGE.format(
        title=_e(title),
        css=_CSS,
        js=_JS,
        header=_header_html(title, result, baseline),
        cards=cards,
        metrics=metrics,
        plots=_plots_html(result, baseline),
        legend=_LEGEND,
        table=_table_html(result, baseline, sources),
        skipped=_skipped_html(result, baseline),
        definitions=_DEFINITIONS,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    logger.info("wrote report %s (%.1f kB)", path, path.stat().st_size / 1024)
    return path


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


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


def _header_html(title: str, result: EvaluationResult, baseline: EvaluationResult | None) -> str:
    facts = [
        f"{len(result.utterances)} utterances",
        f"{result.speed.audio_seconds / 60:.1f} min of audio",
        f"device {result.speed.device or '—'}",
        f"batch size {result.speed.batch_size}",
    ]
    if baseline:
        facts.append(f"baseline: {baseline.model or 'baseline'}")
    return f'<h1>{_e(title)}</h1><p class="facts">{" · ".join(map(_e, facts))}</p>'


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
    _Metric("Timestamps within 50 ms", _timestamp(lambda t: t.share_within(50)), _percent, False),
    _Metric("Timestamps within 100 ms", _timestamp(lambda t: t.share_within(100)), _percent, False),
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


def _summary_html(result: EvaluationResult, baseline: EvaluationResult | None) -> tuple[str, str]:
    """The headline cards and the table of every metric."""
    by_label = {metric.label: metric for metric in _METRICS}
    cards = []
    for label in _HEADLINE:
        metric = by_label[label]
        value = metric.value(result)
        compare = ""
        if baseline:
            other = metric.value(baseline)
            compare = f'<div class="card-base">baseline <b>{_e(metric.show(other))}</b></div>'
            value_class = _verdict(metric, value, other)
        else:
            value_class = ""
        cards.append(
            f'<div class="card"><div class="card-label">{_e(label)}</div>'
            f'<div class="card-value {value_class}">{_e(metric.show(value))}</div>{compare}</div>'
        )

    head = "<th>Metric</th><th>Graft</th>" + ("<th>Baseline</th>" if baseline else "")
    rows = []
    for metric in _METRICS:
        value = metric.value(result)
        cells = f'<td class="{_verdict(metric, value, metric.value(baseline)) if baseline else ""}">'
        cells += f"{_e(metric.show(value))}</td>"
        if baseline:
            cells += f"<td>{_e(metric.show(metric.value(baseline)))}</td>"
        rows.append(f"<tr><th scope=row>{_e(metric.label)}</th>{cells}</tr>")
    return (
        f'<div class="cards">{"".join(cards)}</div>',
        f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>',
    )


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


def _plots_html(result: EvaluationResult, baseline: EvaluationResult | None) -> str:
    plots = [
        (alt, source)
        for alt, source in [
            ("WER by clip duration", _wer_by_duration_plot(result, baseline)),
            ("Word confidence histogram", _confidence_plot(result, baseline)),
        ]
        if source is not None
    ]
    if not plots:
        return ""
    return "".join(f'<figure class="plot"><img alt="{_e(alt)}" src="{src}"></figure>' for alt, src in plots)


# ---- utterance table ---------------------------------------------------------------------------------------------

_OP_CLASS = {"substitute": "op-sub", "delete": "op-del", "insert": "op-ins"}


def _diff_html(alignment: Sequence[AlignmentOp]) -> str:
    parts = []
    for op in alignment:
        reference, hypothesis = _e(" ".join(op.reference)), _e(" ".join(op.hypothesis))
        if op.op == "equal":
            parts.append(hypothesis)
        elif op.op == "substitute":
            parts.append(f'<span class="op op-sub"><s>{reference}</s> {hypothesis}</span>')
        elif op.op == "delete":
            parts.append(f'<span class="op op-del">{reference}</span>')
        else:
            parts.append(f'<span class="op op-ins">{hypothesis}</span>')
    return " ".join(parts) or '<span class="muted">(empty)</span>'


def _flags_html(utterance: UtteranceScore) -> str:
    flags = [
        (utterance.hallucination, "hallucination"),
        (utterance.loop, "loop"),
        (utterance.empty, "empty"),
    ]
    return "".join(f'<span class="flag flag-{name}">{name}</span>' for raised, name in flags if raised)


def _transcript_cells(utterance: UtteranceScore | None) -> str:
    if utterance is None:
        return '<td data-value="">—</td><td class="diff muted">not in this run</td>'
    title = f"reference: {utterance.reference}\nhypothesis: {utterance.hypothesis}"
    return (
        f'<td class="num" data-value="{utterance.wer}">{_e(_percent(utterance.wer))}</td>'
        f'<td class="diff" title="{_e(title)}">{_diff_html(utterance.alignment)}{_flags_html(utterance)}</td>'
    )


def _table_html(result: EvaluationResult, baseline: EvaluationResult | None, sources: dict[str, str]) -> str:
    baseline_by_id = {u.id: u for u in baseline.utterances} if baseline else {}
    head = (
        '<th data-sort="text">ID</th><th data-sort="number">Duration</th><th>Audio</th>'
        '<th data-sort="number" data-default>WER</th><th>Graft transcript</th>'
    )
    if baseline:
        head += '<th data-sort="number">Baseline WER</th><th>Baseline transcript</th><th data-sort="number">ΔWER</th>'
    rows = []
    for utterance in result.utterances:
        source = sources.get(utterance.id)
        player = f'<audio controls preload="none" src="{_e(source)}"></audio>' if source else ""
        cells = (
            f'<td class="id" data-value="{_e(utterance.id)}">{_e(utterance.id)}</td>'
            f'<td class="num" data-value="{utterance.duration}">{utterance.duration:.1f} s</td>'
            f'<td class="audio">{player}</td>{_transcript_cells(utterance)}'
        )
        if baseline:
            other = baseline_by_id.get(utterance.id)
            cells += _transcript_cells(other)
            delta = utterance.wer - other.wer if other else None
            verdict = "" if not delta else "worse" if delta > 0 else "better"
            shown = "—" if delta is None else f"{100 * delta:+.1f} pts"
            cells += f'<td class="num {verdict}" data-value="{"" if delta is None else delta}">{_e(shown)}</td>'
        rows.append(f"<tr>{cells}</tr>")
    return (
        f'<table id="utterances" class="utterances"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _skipped_html(result: EvaluationResult, baseline: EvaluationResult | None) -> str:
    systems = [("graft", result)] + ([("baseline", baseline)] if baseline else [])
    rows = [
        f"<tr><td>{_e(name)}</td><td class=id>{_e(skip.id)}</td><td>{_e(skip.audio or '—')}</td>"
        f"<td>{_e(skip.error)}</td></tr>"
        for name, system in systems
        for skip in system.skipped
    ]
    if not rows:
        return ""
    return (
        f"<section><h2>Skipped ({len(rows)})</h2><p class=muted>Left out of every metric.</p>"
        "<table class=skipped><thead><tr><th>System</th><th>ID</th><th>Audio</th><th>Error</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


_LEGEND = (
    '<div class="legend"><span class="op op-sub"><s>reference</s> output</span> substitution '
    '<span class="op op-del">reference</span> deletion <span class="op op-ins">output</span> insertion '
    '<span class="muted">· text is normalised (Whisper English) · hover a transcript for the raw text</span></div>'
)

_DEFINITIONS = """<section class="definitions"><h2>Definitions</h2><dl>
<dt>WER / CER</dt><dd>Corpus-level word / character error rate after Whisper's English normalisation.</dd>
<dt>Hallucination</dt><dd>Output on a clip whose reference is empty, or more than 2 × reference words + 5.</dd>
<dt>Loop</dt><dd>An n-gram (n = 1–4) repeated back to back at least 4 times in the output but not the reference.</dd>
<dt>Empty output</dt><dd>No output words for a non-empty reference (rate over such utterances).</dd>
<dt>RTFx</dt><dd>Seconds of audio transcribed per wall-clock second; higher is faster.</dd>
<dt>Timestamp MAE</dt><dd>Mean absolute start and end error of output words aligned as equal to reference words.</dd>
<dt>Confidence ECE</dt><dd>Expected calibration error over equal-width confidence bins (10 by default); a word is
correct when it aligns as equal to a reference word.</dd></dl></section>"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body><main>
<header>{header}</header>
<section><h2>Summary</h2>{cards}<div class="overview">{metrics}<div class="plots">{plots}</div></div></section>
<section><h2>Utterances</h2>{legend}{table}</section>
{skipped}
{definitions}
</main><script>{js}</script></body></html>
"""

_CSS = """
:root { --text: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f8fafc; --accent: #2563eb;
  --sub: #fef3c7; --sub-ink: #92400e; --del: #fee2e2; --del-ink: #991b1b; --ins: #dcfce7; --ins-ink: #166534; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1360px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 32px 0 12px; }
.facts, .muted { color: var(--muted); }
.facts { margin: 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; margin-bottom: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.card-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card-value { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card-base { color: var(--muted); font-size: 13px; }
.better { color: #15803d; }
.worse { color: #b91c1c; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
th, td { padding: 7px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: #f1f5f9; font-size: 12px; text-transform: uppercase; letter-spacing: .04em;
  color: #374151; white-space: nowrap; }
.overview { display: grid; grid-template-columns: minmax(420px, 1fr) 2fr; gap: 12px; align-items: start; }
.metrics { width: 100%; }
.metrics th, .metrics td { white-space: nowrap; }
.metrics td { font-variant-numeric: tabular-nums; text-align: right; }
.metrics tbody th { font-weight: 500; }
.plots { display: flex; flex-direction: column; gap: 12px; }
.plot { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
.plot img { display: block; max-width: 100%; max-height: 300px; margin: 0 auto; }
.utterances { width: 100%; }
.utterances thead th { position: sticky; top: 0; z-index: 1; }
.utterances tbody tr:hover { background: #f8fafc; }
th[data-sort] { cursor: pointer; user-select: none; }
th[data-sort]::after { content: " ↕"; color: #cbd5e1; }
th[aria-sort="ascending"]::after { content: " ▲"; color: var(--accent); }
th[aria-sort="descending"]::after { content: " ▼"; color: var(--accent); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; white-space: nowrap; }
.audio audio { width: 180px; height: 32px; }
.diff { min-width: 260px; }
.op { border-radius: 3px; padding: 0 3px; }
.op-sub { background: var(--sub); color: var(--sub-ink); }
.op-sub s { opacity: .6; }
.op-del { background: var(--del); color: var(--del-ink); text-decoration: line-through; }
.op-ins { background: var(--ins); color: var(--ins-ink); text-decoration: underline; }
.legend { margin: 0 0 10px; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.flag { display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 9px; font-size: 11px;
  background: #ede9fe; color: #5b21b6; }
.flag-empty { background: #e0f2fe; color: #075985; }
.flag-loop { background: #fce7f3; color: #9d174d; }
.skipped td { font-size: 13px; }
.definitions dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
.definitions dt { font-weight: 600; }
.definitions dd { margin: 0; color: #374151; }
"""

# Sorting is client-side so the page needs no server; rows open worst-WER first.
_JS = """
(function () {
  "use strict";
  var table = document.getElementById("utterances");
  var body = table.tBodies[0];
  var headers = Array.prototype.slice.call(table.querySelectorAll("th[data-sort]"));
  function key(row, index, numeric) {
    var raw = row.cells[index].getAttribute("data-value");
    if (!numeric) return raw || "";
    return raw === null || raw === "" ? null : parseFloat(raw);
  }
  function sortBy(header, descending) {
    var index = header.cellIndex, numeric = header.getAttribute("data-sort") === "number";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, index, numeric), y = key(b, index, numeric);
      if (x === null || y === null) return (x === null) - (y === null);  // blanks last either way
      var order = numeric ? x - y : x.localeCompare(y, undefined, {numeric: true});
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  headers.forEach(function (header) {
    header.addEventListener("click", function () {
      sortBy(header, header.getAttribute("aria-sort") !== "descending");
    });
  });
  var initial = table.querySelector("th[data-default]");
  if (initial) sortBy(initial, true);
  document.documentElement.setAttribute("data-report-ready", "true");
})();
"""
