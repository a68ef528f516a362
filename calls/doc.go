// Package calls owns the calls of every control protocol: rtpengine's ng,
// rtpproxy, lrkproxy and mediaproxy. It is the layer between the protocol
// front ends and the session engine: front ends decode → call → encode,
// and this package keeps the call table, routes a call to a switchboard
// and a side, labels the sessions, restores the table after a restart and
// answers query, list and count.
//
// A call is named by its protocol and Call-ID and holds dialogs: one per
// forked branch (ng), per stream and its creator's tag (rtpproxy), per
// caller's From tag (mediaproxy), or one (lrkproxy). A dialog remembers
// which party offered first (its tag and the side its media comes from),
// the other party's tag once known, and the session of each stream.
//
// Each protocol has entry points shaped for it: Offer, Answer, Delete and
// Query take SDP offers and answers (ng); StreamOffer, StreamAnswer,
// StreamDelete and StreamQuery a stream at a time (rtpproxy's U, L, D,
// Q); SetPair and DeletePair fixed port pairs (lrkproxy's S and D);
// ListUpdate and ListRemove mediaproxy's stream lists. The table, the
// labels, the routing and the restore are the same for all.
//
// The mapping is kept in session labels (owner, call-id, branch,
// offerer-tag, offerer-side, answerer-tag, dialog-id, medianum, m), so the
// table is rebuilt from the switchboard's journal after a restart. Restore also
// reads the labels the front ends wrote when each kept its own table
// (owner "calls"; rtpproxy-*, lrkproxy-call-id, mediaproxy-*), so an
// upgrade keeps the calls of the previous version.
//
// SessionEnded follows the engine's session ends: a call whose sessions
// have all ended disappears from every protocol's view at once.
package calls
