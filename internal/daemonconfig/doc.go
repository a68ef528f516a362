// Package daemonconfig reads nftrtpproxy's configuration file: one strict
// TOML document whose tables belong to different parts of the daemon.
// switchboard decodes the session engine's keys (state-dir, [defaults],
// [[switchboard]]), notify [notify], replication [replication], and this
// package the daemon's wiring, [control]: where each control protocol
// listens and whom it answers. Every key that none of them takes is an
// error naming it.
//
// It is a package rather than part of cmd/nftrtpproxy because the daemon
// is not its only reader: nftrtpbench and the integration tests check the
// configurations they write with the daemon's own validation.
package daemonconfig
