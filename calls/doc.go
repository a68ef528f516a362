// Package calls maps the call model of SIP relay-control protocols
// (rtpengine's ng, rtpproxy, mediaproxy: a Call-ID, the tags of its two
// parties, SDP offers and answers) onto switchboard sessions.
//
// A call holds one dialog per forked branch. A dialog remembers which party
// offered first (its tag and the gate its SDP came from), the answering
// party's tag once known, and the session of each m-line. Offers and
// answers from either party become sdprelay allocs and updates; the first
// answer ends the ringing timeout. The mapping is kept in session labels,
// so it is rebuilt from the switchboard's journal after a restart.
package calls
