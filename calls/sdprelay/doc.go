// Package sdprelay applies SDP offers and answers to switchboard sessions:
// one session per active m-line, each stream's peer taken from the SDP (or
// from the signalling source address), and the SDP returned with its media
// addresses pointing at the relay's opposite gate.
//
// An SDP that arrives from gate-a's network describes the a-side peer and
// is forwarded into gate-b's network, so it is rewritten to gate-b's address
// and port, and vice versa.
//
// Update (a re-INVITE, or the answer to an offer) keeps the ports of streams
// that stay, allocates sessions for new streams, releases streams set to
// port 0 or dropped from the SDP, and keeps held streams (c=0.0.0.0,
// a=sendonly, a=inactive): iptrtpproxy's semantics without its limit of an
// unchanged number of m-lines. A request that fails leaves every session as
// it was: new sessions are deleted, changed ones restored, and releases
// happen only once everything else has succeeded.
package sdprelay
