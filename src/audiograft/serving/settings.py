"""ServerSettings, apart from the server so that reading them (the CLI's defaults) loads no web or model code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Where ServerSettings finds the API key by default, so that it need not be on the command line (visible in ps).
API_KEY_VARIABLE = "AUDIOGRAFT_API_KEY"


@dataclass(frozen=True)
class ServerSettings:
    model_name: str = "default"  # what /health reports
    # When set, every /v1 request and the API docs need "Authorization: Bearer <key>"; by default $AUDIOGRAFT_API_KEY.
    api_key: str | None = field(default_factory=lambda: os.environ.get(API_KEY_VARIABLE) or None)
    use_prompt: bool = False  # add a request's `prompt` to the instruction (PROMPT_CONTEXT); else it is ignored
    max_batch_size: int = 8  # requests decoded in one device batch
    batch_wait_seconds: float = 0.01  # how long an idle device waits for companions of a new request
    max_queue_depth: int = 256  # requests waiting or running; past it, 503
    max_queued_audio_seconds: float = 3600.0  # their audio in all (float32 at 16 kHz: 64 kB a second); past it, 503
    max_upload_mb: float = 25.0  # OpenAI's own limit
    max_audio_seconds: float = 600.0
    request_timeout_seconds: float = 300.0  # from the request's arrival to its transcript; past it, 504

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
