"""Moving files onto a lent GPU machine whose calls carry at most 64 MiB each.

    python scripts/gpu/stage.py opus CORPUS OUT            # a corpus's manifests with its audio as Ogg/Opus (~5.5 MB/h)
    python scripts/gpu/stage.py pack OUT --part-mb 56 PATH...  # PATHs as one tar stream cut into OUT/part-NN
    python scripts/gpu/stage.py unpack DEST PART...         # there: every member whose bytes have all arrived

The parts travel one call each (`carry`, under an ignored folder); the tar stream's order is the order of PATHs, so
the first parts can be unpacked, and used, while later ones are still on their way. Each part's sha256 is checked.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def _opus_copy(source: Path, target: Path) -> None:
    # Imported here: `unpack` runs on the bare machine before any wheel is installed.
    from audiograft.audio.io import load_audio, write_clip

    if not target.exists():
        write_clip(target, load_audio(source), "opus")


def opus(corpus: Path, out: Path, workers: int = 1) -> None:
    """Every *.jsonl manifest of corpus, rewritten to point at wideband Ogg/Opus copies of its audio under out (the
    clip format `audiograft data synth --audio-format opus` writes)."""
    from audiograft.audio.io import CLIP_FORMATS
    from audiograft.files import write_text_atomically

    out.mkdir(parents=True, exist_ok=True)
    for other in sorted(corpus.glob("*.json")):  # voices.json: how each voice was made
        (out / other.name).write_bytes(other.read_bytes())
    copies = {}
    for manifest in sorted(corpus.glob("*.jsonl")):
        lines = []
        for line in manifest.read_text().splitlines():
            record = json.loads(line)
            relative = Path(record["audio"]).with_suffix(CLIP_FORMATS["opus"])
            copies[corpus / record["audio"]] = out / relative
            lines.append(json.dumps({**record, "audio": str(relative)}, ensure_ascii=False))
        write_text_atomically(out / manifest.name, "\n".join(lines) + "\n")
    (out / "audio").mkdir(exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_opus_copy, copies, copies.values(), chunksize=64))


def pack(out: Path, part_mb: float, paths: list[Path]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|") as tar:
        for path in paths:
            tar.add(path, arcname=path.name)
    data, size = buffer.getvalue(), int(part_mb * 2**20)
    sums = {}
    for index, start in enumerate(range(0, len(data), size)):
        part = out / f"part-{index:02d}"
        part.mkdir(exist_ok=True)
        chunk = data[start : start + size]
        (part / "chunk").write_bytes(chunk)
        sums[part.name] = hashlib.sha256(chunk).hexdigest()
    for name, digest in sums.items():
        (out / name / "sha256").write_text(digest)
    print(json.dumps({"parts": len(sums), "bytes": len(data)}))


def unpack(dest: Path, parts: list[Path]) -> None:
    # Only the parts from part-00 on up to the first missing one: bytes after a gap would complete the member that
    # straddles it with another part's bytes, at its right size, so no later call would write it again.
    by_index = {int(part.name.removeprefix("part-")): part for part in parts}
    data = b""
    for part in (by_index[index] for index in itertools.takewhile(by_index.__contains__, itertools.count())):
        chunk = (part / "chunk").read_bytes()
        if hashlib.sha256(chunk).hexdigest() != (part / "sha256").read_text().strip():
            raise SystemExit(f"{part}: sha256 mismatch")
        data += chunk
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
            for member in tar:
                if member.isdir():
                    (dest / member.name).mkdir(parents=True, exist_ok=True)
                    continue
                source = tar.extractfile(member)
                content = source.read() if source is not None else b""
                if len(content) < member.size:
                    break
                target = dest / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists() or target.stat().st_size != member.size:
                    target.write_bytes(content)
                done.append(member.name)
    except (tarfile.ReadError, EOFError):
        pass  # the stream stops inside a member whose bytes have not all arrived yet (or before the first: no part-00)
    print(json.dumps({"bytes": len(data), "members": len(done), "last": done[-1] if done else None}))


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    opus_parser = commands.add_parser("opus")
    opus_parser.add_argument("corpus", type=Path)
    opus_parser.add_argument("out", type=Path)
    opus_parser.add_argument("--workers", type=int, default=1)
    pack_parser = commands.add_parser("pack")
    pack_parser.add_argument("out", type=Path)
    pack_parser.add_argument("paths", type=Path, nargs="+")
    pack_parser.add_argument("--part-mb", type=float, default=56)
    unpack_parser = commands.add_parser("unpack")
    unpack_parser.add_argument("dest", type=Path)
    unpack_parser.add_argument("parts", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "opus":
        opus(args.corpus, args.out, args.workers)
    elif args.command == "pack":
        pack(args.out, args.part_mb, args.paths)
    else:
        unpack(args.dest, args.parts)


if __name__ == "__main__":
    main()
