"""scripts/gpu/stage.py: a group of files packed into parts, unpacked on the GPU machine as its parts arrive."""

import random

from conftest import load_script


def test_parts_that_arrive_out_of_order_unpack_every_file_whole(tmp_path):
    # The ninth lease carried part 02 before 00 and 01: the file that straddled 00 and 01 was filled with 02's bytes,
    # and kept at its right size when 01 came, so the later unpack never mended it.
    stage = load_script("scripts/gpu/stage.py")
    generator = random.Random(0)
    files = {}
    for index in range(12):
        path = tmp_path / "group" / f"clip-{index:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(generator.randbytes(40_000))
        files[path.name] = path.read_bytes()
    stage.pack(tmp_path / "parts", 0.1, [tmp_path / "group"])
    parts = sorted((tmp_path / "parts").glob("part-*"))
    assert len(parts) >= 3
    dest = tmp_path / "dest"
    for arrived in ([parts[2]], [parts[0], parts[2]], parts):
        stage.unpack(dest, arrived)
    assert {path.name: path.read_bytes() for path in (dest / "group").iterdir()} == files
