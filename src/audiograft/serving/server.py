"""`audiograft serve`: OpenAI's speech-to-text endpoint on a Transcriber, concurrent requests batched on the device.

`POST /v1/audio/transcriptions` takes what OpenAI's takes (multipart `file`, `model`, `language`, `prompt`,
`response_format`, `temperature`, `timestamp_granularities[]`) and answers as it does, so OpenAI's own clients
work against it; `GET /health` reports the model, the queue and the device batches run so far. Every error has
OpenAI's body, {"error": {"message", "type", "param", "code"}}: what a caller sent wrong is a 4xx naming it.

A request is checked in the order that costs the server least: API key and content type before the body is
read, the body's size while it arrives, then the form fields, then the audio (decoded in a thread). Only then
does it wait in the batch queue (`audiograft.serving.batching`) with the requests that share its decoding options.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import numpy as np
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiograft.audio.io import SAMPLE_RATE, AudioError, AudioTooLong, load_audio
from audiograft.inference.transcriber import Transcriber, TranscriptionOptions
from audiograft.inference.transcript import Transcript, render
from audiograft.serving.batching import BatchQueue, QueueFull
from audiograft.serving.settings import ServerSettings

logger = logging.getLogger(__name__)

TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
# With ServerSettings.use_prompt, said after the model's own instruction. The graft has no slot for preceding text
# as Whisper's decoder has (its <|startofprev|> tokens); an LLM graft is conditioned by its instruction, so OpenAI's
# context and spelling hint can only go there. It is off by default: the built-in model, trained on one fixed
# instruction, read prompt text out into its transcripts with this wording and two others (benchmarks/RESULTS.md).
PROMPT_CONTEXT = "The speech may continue this text; follow its spelling of names and terms: {prompt}"
BEARER = HTTPBearer(auto_error=False)
MEDIA_TYPES = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}


class ApiError(Exception):
    """An answer in OpenAI's error shape; `param` names the request field at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


def error_response(error: ApiError) -> JSONResponse:
    kind = "server_error" if error.status >= 500 else "invalid_request_error"
    body = {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


class TranscriptionRequest(BaseModel):
    """The form fields besides `file`, as OpenAI names them; a field OpenAI has and this server lacks is refused
    rather than ignored (a `stream=true` caller would otherwise wait for events that never come)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None  # one model is served, whatever the name; OpenAI's clients must send one
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$", description="ISO-639-1 code of the speech")
    prompt: str | None = Field(None, max_length=2000)
    response_format: Literal["json", "text", "srt", "vtt", "verbose_json"] = "json"
    temperature: float = Field(0.0, ge=0.0, le=1.0)
    timestamp_granularities: list[Literal["word", "segment"]] = Field(
        default=["segment"], validation_alias=AliasChoices("timestamp_granularities[]", "timestamp_granularities")
    )

    @property
    def word_timestamps(self) -> bool:
        return "word" in self.timestamp_granularities


def decoding_options(request: TranscriptionRequest, instruction: str, use_prompt: bool) -> tuple[tuple[str, Any], ...]:
    """The Transcriber overrides a request asks for, hashable: requests share a batch only when these are equal.

    Temperature 0 keeps the Transcriber's fallback from greedy through rising temperatures, as OpenAI's 0 does;
    any other temperature is used alone. The prompt joins `instruction` only with `use_prompt`.
    """
    overrides: dict[str, Any] = {"word_timestamps": request.word_timestamps}
    if use_prompt and request.prompt:
        overrides["task"] = f"{instruction} {PROMPT_CONTEXT.format(prompt=request.prompt)}"
    if request.temperature > 0:
        overrides["temperatures"] = (request.temperature,)
    return tuple(sorted(overrides.items()))


def openai_response(transcript: Transcript, request: TranscriptionRequest) -> Response:
    """json: {"text"}; text, srt, vtt: the rendered transcript; verbose_json: the transcript's JSON shape with
    OpenAI's "task", and with word granularity its words again as one top-level list, as OpenAI's has them."""
    if request.language:
        transcript = dataclasses.replace(transcript, language=request.language)
    if request.response_format == "json":
        return JSONResponse({"text": transcript.text})
    if request.response_format == "verbose_json":
        body = {"task": "transcribe", **transcript.to_dict()}
        if request.word_timestamps:
            body["words"] = [word for segment in body["segments"] for word in segment["words"]]
        return JSONResponse(body)
    return PlainTextResponse(render(transcript, request.response_format), media_type=MEDIA_TYPES[request.response_format])


class UploadLimit:
    """413 for a request body past `max_bytes`: at once when Content-Length says so, else as the bytes arrive,
    so a chunked upload is cut off without being read to its end."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ApiError:
        return ApiError(413, f"the upload is larger than this server's limit of {self.max_bytes / 2**20:g} MB",
                        param="file", code="upload_too_large")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(self._too_large())(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)


class InternalErrors:
    """A failure no handler answers becomes a 500 that says only "internal error", its traceback logged once here.

    Starlette's own last resort would also re-raise it to the server, which logs it again.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception:
            logger.exception("%s %s failed", scope["method"], scope["path"])
            if not started:
                await error_response(ApiError(500, "internal error"))(scope, receive, send)


def create_app(transcriber: Transcriber, settings: ServerSettings | None = None) -> FastAPI:
    """The server's app around a ready Transcriber; its batch queue runs while the app is running.

    `settings` default to ServerSettings(), which reads the API key from $AUDIOGRAFT_API_KEY.
    """
    settings = settings or ServerSettings()
    queue = BatchQueue(
        lambda audios, options: transcriber.transcribe_batch(audios, **dict(options)),
        max_batch_size=settings.max_batch_size,
        max_wait=settings.batch_wait_seconds,
        max_depth=settings.max_queue_depth,
        max_cost=settings.max_queued_audio_seconds,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        queue.start()
        yield
        await queue.stop()

    # The API docs are routes of their own below, behind the API key like the API they describe.
    app = FastAPI(title="audiograft", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(UploadLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(InternalErrors)
    app.add_exception_handler(ApiError, lambda _, error: error_response(error))
    app.add_exception_handler(
        HTTPException, lambda _, error: error_response(ApiError(error.status_code, error.detail, headers=error.headers))
    )

    def require_api_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if settings.api_key is None:
            return
        if credentials is None:
            raise ApiError(401, "no API key: send it as the header 'Authorization: Bearer <key>'", code="invalid_api_key")
        if not secrets.compare_digest(credentials.credentials.encode(), settings.api_key.encode()):
            raise ApiError(401, "incorrect API key", code="invalid_api_key")

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_api_key)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_api_key)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="audiograft")

    @app.get("/redoc", include_in_schema=False, dependencies=[Depends(require_api_key)])
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="audiograft")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": settings.model_name,
            "word_timestamps": transcriber.has_word_aligner,
            "uses_prompt": settings.use_prompt,
            "queue": {"depth": queue.depth, "max_depth": queue.max_depth, "audio_seconds": round(queue.cost, 1),
                      "max_audio_seconds": queue.max_cost},
            "device_batches": queue.stats.as_dict(),
        }

    @app.post(TRANSCRIPTIONS_PATH, dependencies=[Depends(require_api_key)])
    async def transcriptions(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        # A url-encoded form is let through to be told what it lacks: its file.
        if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            got = f"content type {content_type!r}" if content_type else "no content type"
            raise ApiError(415, f"send the request as multipart/form-data with the audio in its field 'file' ({got})")
        try:
            async with asyncio.timeout(settings.request_timeout_seconds):
                # The form (and its spooled upload) is closed once decoded, not held while the request waits.
                async with request.form(max_files=1) as form:
                    upload, fields = _split_form(form.multi_items())
                    options = _validated(fields)
                    _check_granularities(options, transcriber.has_word_aligner, settings.model_name)
                    if not queue.has_room():
                        raise QueueFull
                    waveform = await _decoded(upload, settings.max_audio_seconds)
                instruction = transcriber.options.task or transcriber.processor.instruction
                key = decoding_options(options, instruction, settings.use_prompt)
                transcript = await queue.submit(waveform, key, cost=waveform.size / SAMPLE_RATE)
        except QueueFull as full:
            raise ApiError(503, "the server's queue is full; try again shortly", code="queue_full",
                           headers={"Retry-After": "1"}) from full
        except TimeoutError as timeout:
            raise ApiError(504, f"the transcription did not finish within {settings.request_timeout_seconds:g} s",
                           code="timeout") from timeout
        return openai_response(transcript, options)

    return app


def _split_form(items: list[tuple[str, str | UploadFile]]) -> tuple[UploadFile, dict[str, Any]]:
    """The uploaded file, and the other fields with OpenAI's array fields (`name[]`) gathered into lists."""
    upload = None
    fields: dict[str, Any] = {}
    for name, value in items:
        if name == "file":
            upload = value
        elif name.endswith("[]"):
            fields.setdefault(name, []).append(value)
        else:
            fields[name] = value
    if upload is None:
        raise ApiError(400, "no 'file' field: send the audio as the multipart file field 'file'", param="file")
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "'file' must be a file upload, not a text field", param="file")
    return upload, fields


def _check_granularities(request: TranscriptionRequest, has_word_aligner: bool, model_name: str) -> None:
    if request.word_timestamps and request.response_format != "verbose_json":
        raise ApiError(400, "timestamp_granularities[] 'word' needs response_format 'verbose_json'",
                       param="timestamp_granularities")
    if request.word_timestamps and not has_word_aligner:
        raise ApiError(400, f"word timestamps need a word aligner trained for the model {model_name!r}, "
                       "and it has none", param="timestamp_granularities", code="word_timestamps_unavailable")


def _validated(fields: dict[str, Any]) -> TranscriptionRequest:
    try:
        return TranscriptionRequest.model_validate(fields)
    except ValidationError as invalid:
        error = invalid.errors()[0]
        param = str(error["loc"][0])
        if error["type"] == "extra_forbidden":
            raise ApiError(400, f"'{param}' is not a field this server takes", param=param) from invalid
        raise ApiError(400, f"{param}: {error['msg']}", param=param) from invalid


async def _decoded(upload: UploadFile, max_seconds: float) -> np.ndarray:
    try:
        return await asyncio.to_thread(load_audio, upload.file, max_seconds=max_seconds, name=upload.filename or "file")
    except AudioTooLong as error:
        raise ApiError(413, str(error), param="file", code="audio_too_long") from error
    except AudioError as error:
        raise ApiError(400, str(error), param="file", code="invalid_audio") from error


def serve(model: str = "default", host: str = "127.0.0.1", port: int = 8000, device: str = "cpu",
          settings: ServerSettings | None = None) -> None:
    """Load the model and serve it until interrupted (`settings` default as in create_app)."""
    settings = settings or ServerSettings()
    transcriber = Transcriber(model, device, TranscriptionOptions(batch_size=settings.max_batch_size))
    # Connections past the queue's depth (plus a margin for /health and uploads under way) get uvicorn's 503,
    # so that open uploads, each spooled with up to 1 MB in memory, are bounded too.
    uvicorn.run(create_app(transcriber, settings), host=host, port=port,
                limit_concurrency=settings.max_queue_depth + 64)
