import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audiograft.evaluation.metrics import Hypothesis, score
from audiograft.evaluation.report import write_report

CHROMIUM = shutil.which("chromium")
TRANSCRIPTS = [
    ("u1", "the cat sat on the mat", "the cat sit on mat", "the cat sat on the mat"),
    ("u2", "a quick brown fox", "a quick brown fox jumps", "a quick brown fox"),
    ("u3", "hello <b>world</b> & friends", "hello world and friends", "hello world friends"),
    ("u4", "", "thank you for watching", ""),
]


@pytest.fixture
def results(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    graft, baseline = [], []
    for index, (utterance_id, reference, hypothesis, baseline_hypothesis) in enumerate(TRANSCRIPTS):
        path = clips / f"{utterance_id}.flac"
        seconds = 0.5 + index
        soundfile.write(path, 0.1 * np.sin(np.arange(int(16000 * seconds)) * 0.05).astype(np.float32), 16000)
        words = [{"word": w, "confidence": 0.5 + 0.1 * i} for i, w in enumerate(hypothesis.split())]
        graft.append(Hypothesis(utterance_id, reference, hypothesis, seconds, audio=str(path), words=words))
        baseline.append(Hypothesis(utterance_id, reference, baseline_hypothesis, seconds, audio=str(path)))
    graft.append(Hypothesis("broken", "x", "", 1.0, audio=str(clips / "gone.flac"), error="audio: no such file"))
    return (
        score(graft, wall_seconds=1.0, model="graft", device="cpu", batch_size=2),
        score(baseline, wall_seconds=2.0, model="whisper", device="cpu", batch_size=2),
    )


def test_report_is_self_contained_with_rows_and_diff(results, tmp_path):
    graft, baseline = results
    page = write_report(graft, tmp_path / "report.html", baseline, audio="embed").read_text()
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(link|script)[^>]+(src|href)=", page)  # CSS and JS are inline
    assert page.count('<td class="id"') == len(TRANSCRIPTS)
    for css_class in ("op-sub", "op-del", "op-ins", "flag-hallucination"):
        assert f'class="op {css_class}"' in page or f'class="flag {css_class}"' in page
    assert page.count("data:audio/ogg;base64,") == len(TRANSCRIPTS)
    assert page.count("data:image/png;base64,") == 2  # WER by duration, confidence histogram
    assert "Baseline transcript" in page and "gone.flac" in page  # the skipped clip is listed
    assert "<b>world</b>" not in page and "&lt;b&gt;world&lt;/b&gt;" in page
    # u2 and u3 have 4 and 3 normalised words: the short subset, where the graft inserts 2 words in 7.
    row = re.search(r"WER, short \(1–4 words\) \(n=2\).*?</tr>", page, re.S).group()
    assert "28.57 %" in row and "0.00 %" in row and "worse" in row


def test_report_links_audio_relative_to_the_report_and_respects_the_cap(results, tmp_path):
    graft, _ = results
    linked = write_report(graft, tmp_path / "linked.html", audio="link").read_text()
    assert 'src="clips/u1.flac"' in linked and "data:audio" not in linked
    capped = write_report(graft, tmp_path / "capped.html", audio="embed", embed_limit_bytes=1).read_text()
    assert "data:audio" not in capped and 'src="clips/u1.flac"' in capped
    silent = write_report(graft, tmp_path / "silent.html", audio="none").read_text()
    assert "<audio" not in silent and "Baseline transcript" not in silent


def test_hostile_text_is_escaped_everywhere(tmp_path):
    hostile = "<script>alert(1)</script>"
    result = score(
        [Hypothesis(hostile, f"hello {hostile}", f"hi {hostile}", 1.0),
         Hypothesis("gone", "x", "", 1.0, audio=hostile, error=hostile)],
        wall_seconds=1.0, model=hostile, device=hostile, batch_size=1,
    )
    page = write_report(result, tmp_path / "report.html", audio="none").read_text()
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the report's own sorting script


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def console_messages(run: subprocess.CompletedProcess) -> list[str]:
    # Chromium logs every console message and uncaught exception as an ":INFO:CONSOLE" line on stderr.
    return [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/install_chromium.sh)")
def test_report_renders_in_headless_chromium_without_js_errors(results, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>throw new Error('boom')</script></body></html>")
    assert any("Uncaught" in line for line in console_messages(chromium(broken, tmp_path / "profile", "--dump-dom")))

    graft, baseline = results
    page = write_report(graft, tmp_path / "report.html", baseline, audio="embed")
    run = chromium(page, tmp_path / "profile", "--dump-dom")
    assert console_messages(run) == []
    assert 'data-report-ready="true"' in run.stdout
    # The script sorts rows worst WER first on load: the hallucination on silence (u4), then u1 (33 %).
    assert re.findall(r'<td class="id" data-value="(\w+)"', run.stdout)[:2] == ["u4", "u1"]

    screenshot = tmp_path / "report.png"
    run = chromium(page, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1400,1000")
    assert console_messages(run) == []
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    assert struct.unpack(">II", png[16:24]) == (1400, 1000)
