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
# Kamailio and SIPp, the real SIP peers of the control protocol tests, and
# Redis and keepalived, which carry a router pair's sessions and addresses.
KERNEL_PACKAGES := nftables conntrack iproute2 kmod
SIP_PACKAGES    := kamailio kamailio-xmlrpc-modules sip-tester
PAIR_PACKAGES   := redis-server keepalived

.PHONY: all build static deb install uninstall test unit integration lint fuzz bench bench-profile demo deps demo-deps clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

## static: the two shipped binaries without cgo, so they run on any Linux
## of the architecture whatever its libc (what deb and install ship).
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/static/ ./cmd/nftrtpproxy ./cmd/nftrtpctl

## deb: the Debian package (packaging/nfpm.yaml) as DEB, built by nfpm at a
## pinned version (go run fetches and builds it once). DEB_VERSION is
## VERSION without its v, or 0~git<commit time>.<commit> between tags (so
## later commits sort later).
NFPM        := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DEB_VERSION ?= $(shell echo '$(VERSION)' | sed -E -e 's/^v([0-9]+\.)/\1/' -e t -e "s/^/0~git$$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null)./" | tr - +)
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
DEB         ?= $(BIN)/nftrtpproxy_$(DEB_VERSION)_$(DEB_ARCH).deb
deb: static
	DEB_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' $(GO) run $(NFPM) package -f packaging/nfpm.yaml -p deb -t $(DEB)

## install, uninstall: for hosts without dpkg. Files go where systemd reads
## them under PREFIX (/usr/local/lib/systemd/system, sysctl.d,
## modules-load.d); the config and the reserved-ports snippet go to
## SYSCONFDIR and are never overwritten nor removed. Nothing is applied:
## run sysctl --system, modprobe nf_conntrack and systemctl daemon-reload.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=
LIBDIR     := $(DESTDIR)$(PREFIX)/lib
INSTALLED  := $(DESTDIR)$(PREFIX)/sbin/nftrtpproxy $(DESTDIR)$(PREFIX)/bin/nftrtpctl \
	$(LIBDIR)/systemd/system/nftrtpproxy.service $(LIBDIR)/sysctl.d/60-nftrtpproxy.conf \
	$(LIBDIR)/modules-load.d/nftrtpproxy.conf
install: static
	install -D -m 0755 $(BIN)/static/nftrtpproxy $(DESTDIR)$(PREFIX)/sbin/nftrtpproxy
	install -D -m 0755 $(BIN)/static/nftrtpctl $(DESTDIR)$(PREFIX)/bin/nftrtpctl
	install -d $(LIBDIR)/systemd/system
	sed 's|/usr/sbin/nftrtpproxy|$(PREFIX)/sbin/nftrtpproxy|g; s|/etc/nftrtpproxy/|$(SYSCONFDIR)/nftrtpproxy/|g' \
		examples/nftrtpproxy.service > $(LIBDIR)/systemd/system/nftrtpproxy.service
	install -D -m 0644 packaging/sysctl.d/60-nftrtpproxy.conf $(LIBDIR)/sysctl.d/60-nftrtpproxy.conf
	install -D -m 0644 packaging/modules-load.d/nftrtpproxy.conf $(LIBDIR)/modules-load.d/nftrtpproxy.conf
	@for f in nftrtpproxy/nftrtpproxy.toml:examples/nftrtpproxy.toml \
		sysctl.d/61-nftrtpproxy-reserved-ports.conf:packaging/sysctl.d/61-nftrtpproxy-reserved-ports.conf; do \
	  dst=$(DESTDIR)$(SYSCONFDIR)/$${f%%:*}; \
	  if [ -e $$dst ]; then echo "kept $$dst"; else install -D -m 0644 $${f#*:} $$dst; fi; done

uninstall:
	rm -f $(INSTALLED)
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/nftrtpproxy/ and $(DESTDIR)$(SYSCONFDIR)/sysctl.d/61-nftrtpproxy-reserved-ports.conf;"
	@echo "the table stays until: nft delete table inet nftrtpproxy"

## deps: install the Debian packages that are missing (only as root).
deps:
	@scripts/deps.sh $(KERNEL_PACKAGES) $(SIP_PACKAGES) $(PAIR_PACKAGES)

demo-deps:
	@scripts/deps.sh $(KERNEL_PACKAGES)

## test: lint, unit tests, then the kernel integration tests of every package
## (./... with the integration tag, so no kernel test is left out; root only;
## without root they skip with a message).
test: deps lint unit integration

unit:
	$(GO) test -count=1 -race ./...

integration: build
	$(GO) test -count=1 -tags integration -timeout 15m ./...

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

## bench: the Go benchmarks (kernel ones need root), then cmd/nftrtpbench:
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
	$(GO) run ./cmd/nftrtpbench -bin $(BIN) -gobench $(BIN)/bench-go.txt -out $(BENCH_OUT) $(BENCH_FLAGS)

## bench-profile: measurement 3 of the bench alone, its daemon run with
## -cpuprofile: the profile lands in $(BIN)/nftrtpproxy-control.pprof and the
## table (bench-profile.md) names the daemon's functions that took the most
## (root; about 2 minutes, BENCH_FLAGS=-quick for under one). Profiling
## perturbs the timings: quote the ratios of make bench, not these.
bench-profile: build
	@scripts/deps.sh $(KERNEL_PACKAGES) rtpengine-daemon
	$(GO) run ./cmd/nftrtpbench -bin $(BIN) -only 3 -profile $(BIN) -out $(BIN)/bench-profile.md $(BENCH_FLAGS)

## demo: a three-namespace lab relaying RTP through the kernel (root).
demo: demo-deps build
	$(GO) run ./cmd/nftrtpdemo -bin $(BIN) -config examples/demo.toml

clean:
	rm -rf $(BIN)
