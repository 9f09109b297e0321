# Build, test and benchmark the fabric telemetry aggregator.
# `make test` is the one command CI runs (.ci/run); everything it needs comes
# from go.mod and the tools module (tools/go.mod).

GO        ?= go
TOOLS     := $(GO) tool -modfile=tools/go.mod
PKG       := github.com/fabrictelemetry/aggregator
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS   := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
             -X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildUser=$(USER)@$(shell hostname 2>/dev/null) \
             -X $(VERSION_PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
## FUZZTIME is a count of executions, not a duration: a duration budget
## races Go's fuzz coordinator at the deadline and fails with a bare
## "context deadline exceeded" (go.dev/issue/75804, unfixed in Go 1.26).
FUZZTIME  ?= 20000x
BENCHTIME ?= 1s
SOAKTIME  ?= 5m

.PHONY: all build run tools test lint fmt-check vet staticcheck unit fuzz bench bench-short soak generate tidy-check

all: build test

## build: static binaries with version information in ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## run: the aggregator with an embedded simulator on :8080
run:
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/telemetry-aggregator --demo

## test: everything CI checks: formatting, vet, staticcheck, unit and
## end-to-end tests under -race, each fuzz target briefly, and every
## benchmark once so the suite cannot rot (timings are not asserted).
test: lint unit fuzz bench-short

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd tools && $(GO) vet ./...

staticcheck:
	$(TOOLS) staticcheck ./...
	cd tools && $(GO) tool staticcheck ./...

## tools: build the pinned tools first (promtool compiles for minutes on a
## cold cache; building it inside a test would eat the test's timeout)
tools:
	$(TOOLS) promtool --version >/dev/null
	$(TOOLS) amtool --version >/dev/null

unit: tools
	$(GO) test -race -count=1 -timeout 30m ./...

## fuzz: run every fuzz target for FUZZTIME executions (seed corpora in testdata/)
fuzz:
	@set -e; for file in $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz'); do \
		dir=./$$(dirname $$file); \
		for target in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$file | cut -d' ' -f2); do \
			echo "fuzz $$dir $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

## bench: the benchmark suite (BENCHMARKS.md), one table: go test -bench in
## every package (raw output in bench.out, for benchstat) and the HTTP
## figures under vegeta (tools/benchtable); CPU profiles of the aggregator
## under load in bench-profiles/; BENCHCOUNT=5 repeats go test.
bench:
	cd tools && $(GO) run ./benchtable -root .. -out bench.out -profile.dir bench-profiles -benchtime $(BENCHTIME) $(if $(BENCHCOUNT),-count $(BENCHCOUNT))

## bench-short: the same suite at tiny sizes for a few seconds, so that it
## cannot rot (in make test; timings are not asserted).
bench-short:
	cd tools && $(GO) run ./benchtable -root .. -out bench-short.out -short

## soak: the real simulator in FLAKY mode and the real aggregator under
## readers and scrapers of every endpoint for SOAKTIME (not in make test);
## prints what it held: requests, faults injected, polls rejected, memory,
## goroutines, errors. Built without -race: it measures the binary as shipped.
soak:
	SOAK_DURATION=$(SOAKTIME) $(GO) test -count=1 -timeout 0 -v -run '^TestSoak$$' ./e2e/

## generate: regenerate dashboards and other generated files
generate:
	$(GO) generate ./...
