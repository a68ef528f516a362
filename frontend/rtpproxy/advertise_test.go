package rtpproxy

import (
	"net/netip"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// Behind a 1:1 NAT the replies carry a gate's advertised address, while
// the session (and the kernel) keeps the local one.
func TestRepliesCarryTheAdvertisedAddress(t *testing.T) {
	r := &rig{t: t, cfg: switchboardtest.Config(t, "30000-30009", moreBoards), def: "edge", mem: relaytest.NewMemory()}
	r.cfg.Switchboard("edge").B.Advertise = netip.MustParseAddr("203.0.113.9")
	r.startManager()
	r.serve("udp:127.0.0.1:0")
	r.expect("UEIc8,101 "+call+" 192.0.2.10 6000 alice;1", "30000 203.0.113.9")
	if g := r.only().GateB; g != ap("10.0.0.1:30000") {
		t.Errorf("session gate-b %s, want the local 10.0.0.1:30000", g)
	}
	r.expect("LIE "+call+" 10.0.0.10 6000 alice;1 bob;1", "30000 192.0.2.1")
}
