"""The server: its OpenAI contract and errors through TestClient on a fake Transcriber, then OpenAI's own client
against a live uvicorn server on loopback with a tiny random graft and the real Transcriber."""

import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx2
import numpy as np
import openai
import pytest
import soundfile
import torch
import uvicorn
from conftest import make_clips
from fastapi.testclient import TestClient

from audiograft.audio.io import load_audio
from audiograft.inference.alignment import WordAligner
from audiograft.inference.transcriber import Transcriber, TranscriptionOptions
from audiograft.inference.transcript import Segment, Transcript, Word, render
from audiograft.modeling.config import GraftConfig
from audiograft.modeling.model import GraftModel
from audiograft.serving.server import (
    PROMPT_CONTEXT,
    ServerSettings,
    TranscriptionRequest,
    create_app,
    decoding_options,
    openai_response,
    serve,
)

URL = "/v1/audio/transcriptions"
EXAMPLES = Path(__file__).parents[2] / "examples"


def wav_bytes(seconds: float = 1.0, sample_rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, make_clips([seconds])[0], sample_rate, format="WAV")
    return buffer.getvalue()


def nan_wav_bytes() -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.full(1600, np.nan, dtype=np.float32), 16000, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def fake_transcript(samples: int) -> Transcript:
    duration = samples / 16000
    words = [Word("hello", 0.1, 0.4, 0.9), Word("world", 0.5, 0.9, 0.8)]
    return Transcript("hello world", duration, [Segment(0, 0.0, duration, "hello world", words)])


class FakeTranscriber:
    """Transcriber's signatures: records each transcribe_batch call; `seconds` makes each call take that long."""

    def __init__(self, seconds: float = 0.0, has_word_aligner: bool = True, fail: bool = False,
                 poison_samples: int | None = None):
        self.processor = SimpleNamespace(instruction="Transcribe the audio.")
        self.options = SimpleNamespace(task=None)
        self.has_word_aligner = has_word_aligner
        self.seconds = seconds
        self.fail = fail
        self.poison_samples = poison_samples  # a call holding a clip of this many samples fails, as a whole
        self.calls: list[tuple[list[int], dict]] = []

    def transcribe_batch(self, audios, **overrides):
        time.sleep(self.seconds)
        self.calls.append(([audio.size for audio in audios], overrides))
        if self.fail:
            raise RuntimeError("out of device memory")
        if any(audio.size == self.poison_samples for audio in audios):
            raise ValueError("Input audio chunk is too short")
        return [fake_transcript(audio.size) for audio in audios]


@pytest.fixture
def fake():
    return FakeTranscriber()


@pytest.fixture
def client(fake):
    with TestClient(create_app(fake, ServerSettings(batch_wait_seconds=0.0))) as client:
        yield client


def post(client, data=None, file=("clip.wav", None, "audio/wav"), **kwargs):
    name, content, media = file
    files = {"file": (name, wav_bytes() if content is None else content, media)} if name else None
    return client.post(URL, data=data or {}, files=files, **kwargs)


def test_json_is_openai_text_only(client, fake):
    response = post(client, {"model": "whisper-1"})
    assert response.status_code == 200
    assert response.json() == {"text": "hello world"}
    assert fake.calls == [([16000], {"word_timestamps": False})]


@pytest.mark.parametrize("response_format, media_type", [("text", "text/plain"), ("srt", "application/x-subrip"),
                                                          ("vtt", "text/vtt")])
def test_plain_formats_are_the_rendered_transcript(client, response_format, media_type):
    response = post(client, {"response_format": response_format})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.text == render(fake_transcript(16000), response_format)


def test_verbose_json_is_the_transcript_shape_with_task_and_words_only_when_asked(client, fake):
    expected = fake_transcript(16000).to_dict()
    segments_only = post(client, {"response_format": "verbose_json", "language": "fr"}).json()
    assert segments_only == {"task": "transcribe", **expected, "language": "fr"}
    with_words = post(client, {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]})
    assert with_words.json()["words"] == expected["segments"][0]["words"]
    assert with_words.json()["segments"] == expected["segments"]
    assert fake.calls[-1][1] == {"word_timestamps": True}


def test_temperature_reaches_the_transcriber_and_the_prompt_only_when_the_server_uses_prompts(fake):
    for use_prompt in (False, True):
        with TestClient(create_app(fake, ServerSettings(use_prompt=use_prompt))) as client:
            assert post(client, {"prompt": "Dashwood, Norland", "temperature": "0.4"}).status_code == 200
            assert client.get("/health").json()["uses_prompt"] is use_prompt
    ignored, used = fake.calls[0][1], fake.calls[1][1]
    assert ignored == {"temperatures": (0.4,), "word_timestamps": False}
    assert used == {**ignored, "task": "Transcribe the audio. " + PROMPT_CONTEXT.format(prompt="Dashwood, Norland")}


def test_decoding_options_are_equal_exactly_when_requests_may_share_a_batch():
    def options(use_prompt=True, **fields):
        return decoding_options(TranscriptionRequest(**fields), "Transcribe.", use_prompt)

    assert options(model="a", language="en", response_format="srt") == options(model="b")
    assert options(temperature=0.0) == options() == options(prompt="x", use_prompt=False)
    assert len({options(), options(prompt="x"), options(prompt="y"), options(temperature=0.5),
                options(response_format="verbose_json", **{"timestamp_granularities[]": ["word"]})}) == 5


def test_openai_response_keeps_the_transcripts_language_unless_the_request_names_one():
    transcript = fake_transcript(8000)
    assert openai_response(transcript, TranscriptionRequest(response_format="verbose_json")).body.count(b'"en"') == 1
    assert b'"de"' in openai_response(transcript, TranscriptionRequest(response_format="verbose_json", language="de")).body


@pytest.mark.parametrize(
    "data, file, status, param, message",
    [
        ({"model": "whisper-1"}, (None, None, None), 400, "file", "no 'file' field"),
        ({"file": "not a file"}, (None, None, None), 400, "file", "must be a file upload"),
        ({}, ("notes.txt", b"this is not audio", "text/plain"), 400, "file", "notes.txt: not readable as audio"),
        ({}, ("empty.wav", b"", "audio/wav"), 400, "file", "empty.wav: is empty"),
        ({}, ("silent.wav", wav_bytes(0.0), "audio/wav"), 400, "file", "silent.wav: contains no samples"),
        ({}, ("nan.wav", nan_wav_bytes(), "audio/wav"), 400, "file", "nan.wav: holds NaN"),
        ({}, ("blip.wav", wav_bytes(0.02), "audio/wav"), 400, "file", "blip.wav: 20 ms of audio is too short"),
        ({"response_format": "mp3"}, ("clip.wav", None, "audio/wav"), 400, "response_format", "'verbose_json'"),
        ({"timestamp_granularities[]": "sentence"}, ("clip.wav", None, "audio/wav"), 400, "timestamp_granularities[]",
         "'word' or 'segment'"),
        ({"timestamp_granularities[]": "word"}, ("clip.wav", None, "audio/wav"), 400, "timestamp_granularities",
         "needs response_format 'verbose_json'"),
        ({"temperature": "2"}, ("clip.wav", None, "audio/wav"), 400, "temperature", "less than or equal to 1"),
        ({"temperature": "warm"}, ("clip.wav", None, "audio/wav"), 400, "temperature", "valid number"),
        ({"language": "English"}, ("clip.wav", None, "audio/wav"), 400, "language", "pattern"),
        ({"stream": "true"}, ("clip.wav", None, "audio/wav"), 400, "stream", "'stream' is not a field"),
        ({}, ("long.wav", wav_bytes(3.0), "audio/wav"), 413, "file", "long.wav: 3.0 s is longer than 2 s"),
    ],
)
def test_malformed_requests_get_a_4xx_in_openais_shape_naming_the_problem(fake, data, file, status, param, message):
    settings = ServerSettings(max_audio_seconds=2.0)
    with TestClient(create_app(fake, settings)) as client:
        response = post(client, data, file)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert message in error["message"]
    assert fake.calls == []


@pytest.mark.parametrize(
    "request_kwargs, message",
    [
        ({"files": [("file", ("a.wav", wav_bytes())), ("file", ("b.wav", wav_bytes()))]}, "Too many files"),
        ({"content": b"garbage", "headers": {"content-type": "multipart/form-data; boundary=xyz"}}, "Invalid multipart"),
        ({"content": b"x", "headers": {"content-type": "multipart/form-data"}}, "Missing boundary"),
    ],
)
def test_broken_multipart_bodies_are_a_400_in_openais_shape(client, fake, request_kwargs, message):
    response = client.post(URL, **request_kwargs)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert fake.calls == []


def test_word_timestamps_without_an_aligner_are_a_clear_400():
    with TestClient(create_app(FakeTranscriber(has_word_aligner=False))) as client:
        response = post(client, {"response_format": "verbose_json", "timestamp_granularities[]": "word"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "word_timestamps_unavailable"


@pytest.mark.parametrize("body, got", [({"json": {"file": "clip.wav"}}, "'application/json'"),
                                       ({"content": b"RIFF", "headers": {"content-type": "audio/wav"}}, "'audio/wav'"),
                                       ({}, "no content type")])
def test_a_body_that_is_not_a_form_is_a_415(client, body, got):
    response = client.post(URL, **body)
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["error"]["message"]
    assert got in response.json()["error"]["message"]


def test_an_upload_past_the_size_limit_is_a_413_whether_declared_or_streamed(fake):
    request = httpx2.Request("POST", "http://testserver" + URL, files={"file": ("big.wav", wav_bytes(1.0))})
    body = request.read()
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    with TestClient(create_app(fake, ServerSettings(max_upload_mb=0.01))) as client:
        declared = client.post(URL, content=body, headers={"content-type": request.headers["content-type"]})
        streamed = client.post(URL, content=iter(chunks), headers={"content-type": request.headers["content-type"]})
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "upload_too_large"
    assert "content-length" not in streamed.request.headers
    assert fake.calls == []


def test_the_api_key_is_required_when_set_and_health_stays_open(fake):
    with TestClient(create_app(fake, ServerSettings(api_key="sesame"))) as client:
        missing = post(client)
        wrong = post(client, headers={"Authorization": "Bearer open"})
        right = post(client, headers={"Authorization": "Bearer sesame"})
        health = client.get("/health")
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert "Authorization: Bearer" in missing.json()["error"]["message"]
    assert right.status_code == 200 and health.status_code == 200
    assert len(fake.calls) == 1


def test_unknown_routes_and_methods_get_openais_error_shape(client):
    missing, wrong_method = client.get("/v1/audio/translations"), client.get(URL)
    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    assert wrong_method.headers["allow"] == "POST"
    for response in (missing, wrong_method):
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_request_past_its_timeout_is_a_504():
    with TestClient(create_app(FakeTranscriber(seconds=0.5), ServerSettings(request_timeout_seconds=0.1))) as client:
        response = post(client)
    assert response.status_code == 504
    assert response.json()["error"] == {"message": "the transcription did not finish within 0.1 s",
                                        "type": "server_error", "param": None, "code": "timeout"}


def test_a_full_queue_is_a_503_with_retry_after():
    slow = FakeTranscriber(seconds=0.5)
    with TestClient(create_app(slow, ServerSettings(max_queue_depth=1, batch_wait_seconds=0.0))) as client:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(post, client)
            time.sleep(0.2)
            second = pool.submit(post, client)
            responses = [first.result(), second.result()]
    assert sorted(r.status_code for r in responses) == [200, 503]
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and refused.json()["error"]["code"] == "queue_full"


def test_a_model_failure_is_a_500_saying_only_internal_error_and_logged_once(caplog):
    # The client raises any exception the app lets out after answering, as uvicorn would log it a third time.
    with TestClient(create_app(FakeTranscriber(fail=True))) as client:
        response = post(client)
    assert response.status_code == 500
    assert response.json()["error"] == {"message": "internal error", "type": "server_error", "param": None,
                                        "code": None}
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1 and "out of device memory" in str(tracebacks[0].exc_info[1])


def test_one_clients_bad_clip_fails_no_other_clients_request():
    poisoned = FakeTranscriber(seconds=0.2, poison_samples=8000)
    seconds = [1.0, 1.0, 0.5, 1.0, 1.0, 1.0]  # the 0.5 s clip fails any device batch it is in
    with TestClient(create_app(poisoned, ServerSettings(max_batch_size=8, batch_wait_seconds=0.2))) as client:
        with ThreadPoolExecutor(len(seconds)) as pool:
            responses = list(pool.map(lambda s: post(client, file=("clip.wav", wav_bytes(s), "audio/wav")), seconds))
    assert [r.status_code for r in responses] == [200, 200, 500, 200, 200, 200]
    assert any(len(sizes) > 1 and 8000 in sizes for sizes, _ in poisoned.calls)  # it did share a batch


def test_the_api_docs_need_the_key_when_one_is_set(fake):
    paths = ["/docs", "/redoc", "/openapi.json"]
    with TestClient(create_app(fake, ServerSettings(api_key="sesame"))) as client:
        refused = [client.get(path) for path in paths]
        allowed = [client.get(path, headers={"Authorization": "Bearer sesame"}) for path in paths]
    assert [r.status_code for r in refused] == [401] * 3
    assert [r.status_code for r in allowed] == [200] * 3
    assert URL in allowed[2].json()["paths"] and "/openapi.json" not in allowed[2].json()["paths"]
    with TestClient(create_app(fake)) as client:
        assert [client.get(path).status_code for path in paths] == [200] * 3


def test_the_api_key_is_read_from_the_environment(fake, monkeypatch):
    monkeypatch.setenv("AUDIOGRAFT_API_KEY", "sesame")
    assert ServerSettings().api_key == "sesame" and ServerSettings(api_key=None).api_key is None
    with TestClient(create_app(fake)) as client:
        assert post(client).status_code == 401
        assert post(client, headers={"Authorization": "Bearer sesame"}).status_code == 200
    monkeypatch.setenv("AUDIOGRAFT_API_KEY", "")
    assert ServerSettings().api_key is None


def test_concurrent_requests_share_device_batches_and_health_counts_them():
    slow = FakeTranscriber(seconds=0.3)
    with TestClient(create_app(slow, ServerSettings(max_batch_size=8, batch_wait_seconds=0.05))) as client:
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: post(client), range(8)))
        health = client.get("/health").json()
    assert [r.status_code for r in responses] == [200] * 8
    assert len(slow.calls) < 8
    assert health["device_batches"]["batches"] == len(slow.calls)
    assert health["device_batches"]["items"] == 8
    assert health["queue"]["depth"] == 0 and health["model"] == "default"


# The live server: OpenAI's official client, a real uvicorn on loopback, the real Transcriber on a tiny random graft.

API_KEY = "test-key"


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory) -> Path:
    """The first 3 s of the JFK sample: real speech, so that the Transcriber's voice detector lets it through."""
    path = tmp_path_factory.mktemp("clips") / "jfk_start.flac"
    soundfile.write(path, load_audio(EXAMPLES / "jfk.flac")[: 3 * 16000], 16000)
    return path


@pytest.fixture(scope="module")
def graft_dir(base_models, tmp_path_factory) -> Path:
    """A saved tiny random graft with an (untrained) word aligner."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("graft")
    graft = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"])))
    graft.save_pretrained(directory)
    WordAligner(graft.encoder.hidden_size, hidden_size=16, layers=1).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def live_server(graft_dir):
    transcriber = Transcriber(str(graft_dir), options=TranscriptionOptions(temperatures=(0.0,), max_new_tokens=6))
    settings = ServerSettings(model_name="tiny", api_key=API_KEY, use_prompt=True, max_batch_size=8,
                              batch_wait_seconds=0.05)
    server = uvicorn.Server(uvicorn.Config(create_app(transcriber, settings), log_level="warning"))
    listening = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def openai_client(live_server):
    return openai.OpenAI(base_url=live_server + "/v1", api_key=API_KEY, max_retries=0)


def test_openai_client_gets_every_response_format(openai_client, clip_path):
    def create(response_format, **kwargs):
        with open(clip_path, "rb") as file:
            return openai_client.audio.transcriptions.create(model="whisper-1", file=file,
                                                             response_format=response_format, **kwargs)

    verbose = create("verbose_json", timestamp_granularities=["word", "segment"])
    transcript = Transcript.from_dict(verbose.model_dump())
    assert isinstance(verbose, openai.types.audio.TranscriptionVerbose) and verbose.text
    assert verbose.duration == pytest.approx(3.0) and verbose.language == "en"
    assert [w.word for w in verbose.words] == [w.word for s in transcript.segments for w in s.words]
    assert all(0 <= w.start <= w.end <= verbose.duration for w in verbose.words)
    assert create("json").text == verbose.text
    assert create("text") == render(transcript, "text")
    assert create("srt") == render(transcript, "srt") and create("srt").startswith("1\n00:00:0")
    assert create("vtt") == render(transcript, "vtt") and create("vtt").startswith("WEBVTT")
    assert create("verbose_json").words is None


def test_prompt_language_and_temperature_pass_through_the_real_transcriber(openai_client, clip_path):
    with open(clip_path, "rb") as file:
        verbose = openai_client.audio.transcriptions.create(
            model="whisper-1", file=file, response_format="verbose_json", prompt="Dashwood, Norland",
            language="fr", temperature=0.3)
    assert verbose.language == "fr" and verbose.duration == pytest.approx(3.0)


def test_openai_client_raises_its_own_errors(live_server, openai_client, clip_path):
    stranger = openai.OpenAI(base_url=live_server + "/v1", api_key="wrong", max_retries=0)
    with open(clip_path, "rb") as file, pytest.raises(openai.AuthenticationError):
        stranger.audio.transcriptions.create(model="whisper-1", file=file)
    with pytest.raises(openai.BadRequestError, match="notes.txt: not readable as audio"):
        openai_client.audio.transcriptions.create(model="whisper-1", file=("notes.txt", b"plain words"))
    with open(clip_path, "rb") as file, pytest.raises(openai.BadRequestError, match="needs response_format"):
        openai_client.audio.transcriptions.create(model="whisper-1", file=file, timestamp_granularities=["word"])


def test_concurrent_clients_are_served_in_fewer_device_batches(live_server, openai_client, clip_path):
    before = httpx2.get(live_server + "/health").json()["device_batches"]

    def transcribe(_):
        with open(clip_path, "rb") as file:
            return openai_client.audio.transcriptions.create(model="whisper-1", file=file).text

    with ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(transcribe, range(6)))
    after = httpx2.get(live_server + "/health").json()["device_batches"]
    assert len(set(texts)) == 1 and texts[0]
    assert after["items"] - before["items"] == 6
    assert after["batches"] - before["batches"] < 6


def test_a_clip_too_short_is_a_400_and_fails_no_request_batched_with_it(openai_client, clip_path):
    def transcribe(file):
        try:
            return openai_client.audio.transcriptions.create(model="whisper-1", file=file).text
        except openai.BadRequestError as error:
            return error

    speech = ("speech.flac", clip_path.read_bytes())
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(transcribe, [speech, ("blip.wav", wav_bytes(0.02)), speech, speech]))
    assert isinstance(results[1], openai.BadRequestError) and "blip.wav: 20 ms of audio is too short" in str(results[1])
    assert all(isinstance(text, str) and text for text in results[:1] + results[2:])


def test_the_serve_command_passes_its_options_and_defaults_to_serve(monkeypatch):
    from typer.testing import CliRunner

    from audiograft.cli import app

    calls = []
    monkeypatch.setattr("audiograft.serving.server.serve", lambda model, **kwargs: calls.append((model, kwargs)))
    runner = CliRunner()
    assert runner.invoke(app, ["serve"]).exit_code == 0
    assert calls[-1] == ("default", {"host": "127.0.0.1", "port": 8000, "device": "cpu", "settings": ServerSettings()})
    result = runner.invoke(app, ["serve", "--model", "my-graft", "--port", "9000", "--max-batch-size", "4",
                                 "--batch-wait-ms", "20", "--request-timeout", "60", "--use-prompt"],
                           env={"AUDIOGRAFT_API_KEY": "k"})
    assert result.exit_code == 0, result.output
    assert calls[-1][1]["settings"] == ServerSettings(model_name="my-graft", api_key="k", use_prompt=True,
                                                      max_batch_size=4, batch_wait_seconds=0.02,
                                                      request_timeout_seconds=60.0)


def test_serve_loads_the_model_into_a_transcriber_and_runs_uvicorn_on_loopback(graft_dir, monkeypatch):
    runs = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: runs.append((app, kwargs)))
    serve(str(graft_dir), settings=ServerSettings(max_batch_size=3, max_queue_depth=10))
    app, kwargs = runs[0]
    assert kwargs == {"host": "127.0.0.1", "port": 8000, "limit_concurrency": 10 + 64}
    with TestClient(app) as client:
        health = client.get("/health").json()
    assert health["word_timestamps"] is True and health["queue"]["max_depth"] == 10
