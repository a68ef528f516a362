// Package replication keeps a standby router's sessions in step with the
// active router's through Redis, so that a pair of routers behind a
// floating address (keepalived's VRRP) keeps calls' media when the active
// router dies.
//
// The active daemon's Publisher is the switchboard.Manager's Replica: every
// committed session change (the journal's record, learned sources and
// locks included) goes into a bounded queue without blocking the request,
// and is written to Redis asynchronously as one MULTI/EXEC: the session's
// key (PREFIX session:ID, removed on delete) and an entry in the stream
// PREFIX changes carrying the publisher's epoch and a sequence number.
// Whenever the publisher cannot vouch for Redis (start, takeover, a failed
// write, an overflowing queue, Redis restarted empty) it writes a full
// snapshot under a new epoch: every session key, stale keys deleted, then
// PREFIX epoch and a "sync" entry.
//
// The standby daemon's Follower reads the stream and applies each change
// to its own kernel and journal through the Manager, whose timers do not
// fire while standby. A gap in the sequence, a new epoch, or a lost
// connection makes it resynchronise from the snapshot (the session keys);
// until then it reports that it is not in sync (Status).
//
// Node decides the role from whether the router holds the role addresses
// (the gate addresses keepalived moves), watched over rtnetlink, never from
// Redis: on takeover it promotes the Manager and starts what an active
// daemon runs (the control front ends restore their call tables from the
// sessions' labels); on losing the addresses it stops them and follows.
// Redis down or slow never blocks a request or stops media: each router's
// journal stays its truth, and replication catches up when Redis returns.
//
// It is a package of its own, beside switchboard (which owns sessions and
// knows nothing of Redis) and the protocol front ends, because it is a
// transport between two Managers with its own lifecycle: main wires it in
// only when the configuration has a [replication] section.
package replication
