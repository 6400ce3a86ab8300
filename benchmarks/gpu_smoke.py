"""GPU smoke check for the core graft: tiny random bases, bf16 on CUDA, batch == single, timing of one generate."""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_clips, save_causal_lm, save_whisper  # noqa: E402

from audiograft import GraftConfig, GraftModel  # noqa: E402


def main(workdir: Path) -> None:
    encoder, llm = save_whisper(workdir / "whisper"), save_causal_lm(workdir / "qwen2", "qwen2")
    for context in ("trim", "full"):
        model = GraftModel.from_config(GraftConfig(encoder=str(encoder), llm=str(llm), encoder_context=context),
                                       device="cuda").eval()
        clips = make_clips([0.8, 3.1, 1.7, 5.0])
        batch = model.processor(clips)
        tokens = model.generate(**batch, max_new_tokens=8, min_new_tokens=8)
        singles = [model.generate(**model.processor([c]), max_new_tokens=8, min_new_tokens=8)[0] for c in clips]
        same = all(torch.equal(tokens[i], singles[i]) for i in range(len(clips)))
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(**batch, max_new_tokens=8, min_new_tokens=8)
        torch.cuda.synchronize()
        print(f"context={context} dtype={model.llm.dtype} device={torch.cuda.get_device_name()} "
              f"batch_equals_single={same} generate_4x8_ms={1000 * (time.perf_counter() - start):.1f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
