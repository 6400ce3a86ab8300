import pytest

from audiograft.files import atomic_path, write_text_atomically


def test_a_file_appears_whole_or_not_at_all(tmp_path):
    path = write_text_atomically(tmp_path / "deep" / "a.txt", "first")
    assert path.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "first"
    write_text_atomically(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_a_directory_is_renamed_into_place_and_never_over_a_full_one(tmp_path):
    with atomic_path(tmp_path / "checkpoint", directory=True) as temporary:
        (temporary / "weights").write_text("w")
        assert not (tmp_path / "checkpoint").exists()
    assert (tmp_path / "checkpoint" / "weights").read_text() == "w"
    with pytest.raises(OSError), atomic_path(tmp_path / "checkpoint", directory=True) as temporary:
        (temporary / "other").write_text("o")
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    assert [p.name for p in (tmp_path / "checkpoint").iterdir()] == ["weights"]
