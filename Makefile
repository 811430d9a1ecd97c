# closurefs — see README.md.
GO ?= go
export PATH := $(PATH):/usr/local/go/bin
BIN := bin/closurefs
TESTFLAGS ?= -timeout 14m

.PHONY: all deps build demo test vet bench fuzz clean

all: build

deps:
	@sh scripts/deps.sh

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/closurefs

demo: deps build
	@sh scripts/demo.sh

STATICCHECK := bin/staticcheck

$(STATICCHECK):
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet: $(STATICCHECK)
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)

test: deps vet
	$(GO) test $(TESTFLAGS) ./...

bench: deps build
	@sh scripts/bench.sh

# Every fuzz target for FUZZTIME each (default 30s).
fuzz: deps
	@sh scripts/fuzz.sh

clean:
	rm -rf bin
