// Package conffile reads the daemon's one TOML configuration file for the
// packages that own its tables: switchboard takes state-dir, [defaults] and
// [[switchboard]], notify [notify], replication [replication] and the
// daemon's wiring [control]. The file is parsed once; each owner decodes its
// top-level keys from it, and Unknown then names every key nobody took, so
// the file stays strict though no package knows the whole schema.
package conffile
