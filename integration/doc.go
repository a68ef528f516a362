// Package integration holds nftrtpproxy's end-to-end tests against the real
// kernel: each test builds a caller–router–callee lab of network namespaces
// (internal/netlab), starts the daemon binary in the router, drives it over
// its API, sends real UDP and asserts what arrives where and from which
// source, with the nft and conntrack CLIs as independent oracles.
//
// The tests carry the build tag "integration" and need root; without root
// they skip with a message. Run them with `make integration`.
package integration
