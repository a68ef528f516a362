# nftrtpproxy — make targets. `make demo` and `make test` install what they
# need on a fresh Debian 12 machine (Debian packages when run as root).

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
BIN         := bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOBIN       := $(shell $(GO) env GOPATH)/bin
FUZZTIME    ?= 20s
# Debian packages: the demo needs the kernel tools (ip; nft and conntrack are
# also the independent oracles of the integration tests); the tests add
# Kamailio and SIPp, the real SIP peers of the control protocol tests.
KERNEL_PACKAGES := nftables conntrack iproute2 kmod
SIP_PACKAGES    := kamailio sip-tester

.PHONY: all build test unit integration lint fuzz bench demo deps demo-deps clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

## deps: install the Debian packages that are missing (only as root).
deps:
	@scripts/deps.sh $(KERNEL_PACKAGES) $(SIP_PACKAGES)

demo-deps:
	@scripts/deps.sh $(KERNEL_PACKAGES)

## test: lint, unit tests, then the kernel integration tests (root only;
## without root they skip with a message).
test: deps lint unit integration

unit:
	$(GO) test -count=1 -race ./...

integration: build
	$(GO) test -count=1 -tags integration -timeout 15m ./integration/... ./relay/...

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install $(STATICCHECK)
	$(GOBIN)/staticcheck ./...
	$(GOBIN)/staticcheck -tags integration ./...

## fuzz: every native fuzz target for FUZZTIME each.
fuzz:
	@for t in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$t/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "== $$t $$f"; $(GO) test $$t -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) || exit 1; \
	  done; done

## bench: the Go benchmarks (kernel ones need root), then integration/cmd/bench:
## the kernel path beside plain routing and rtpengine in network-namespace
## labs, one table of ratios printed and written to BENCH_OUT (root; about
## 9 minutes, BENCH_FLAGS=-quick for about 3). rtpengine is Debian's
## rtpengine-daemon, installed here rather than with the test packages: nothing
## else needs it or its ~65 codec libraries, and its package enables a
## systemd unit (never started here: scripts/deps.sh forbids service starts).
BENCH_OUT   ?= bench-results.md
BENCH_FLAGS ?=
bench: build
	@scripts/deps.sh $(KERNEL_PACKAGES) rtpengine-daemon
	@{ $(GO) test -run='^$$' -bench=. -benchmem -tags integration ./...; echo $$? > $(BIN)/bench-go.rc; } | tee $(BIN)/bench-go.txt
	@exit $$(cat $(BIN)/bench-go.rc)
	$(GO) run ./integration/cmd/bench -bin $(BIN) -gobench $(BIN)/bench-go.txt -out $(BENCH_OUT) $(BENCH_FLAGS)

## demo: a three-namespace lab relaying RTP through the kernel (root).
demo: demo-deps build
	$(GO) run ./integration/cmd/demo -bin $(BIN) -config examples/demo.toml

clean:
	rm -rf $(BIN)
