package mediaproxy

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// Behind a 1:1 NAT the reply carries the gate's advertised address; the
// session keeps the local one.
func TestRepliesCarryTheAdvertisedAddress(t *testing.T) {
	h := &harness{cfg: switchboardtest.Config(t, "30000-30009", "")}
	h.cfg.Switchboards[0].B.Advertise = netip.MustParseAddr("203.0.113.9")
	h.m, h.mem = switchboardtest.Manager(t, h.cfg)
	h.path = filepath.Join(t.TempDir(), "run", "dispatcher.sock")
	h.serve(t)
	if got := h.ask(t, moduleInvite); got != "203.0.113.9 30000" {
		t.Fatalf("INVITE: %q, want the callee-facing gate's advertised 203.0.113.9 30000", got)
	}
	if got := h.ask(t, moduleOK); got != "192.0.2.1 30000" {
		t.Fatalf("200 OK: %q, want the caller-facing gate 192.0.2.1 30000", got)
	}
	if ss := h.m.List(); len(ss) != 1 || ss[0].GateB.Addr() != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("sessions %+v, want one on the local gate-b 10.0.0.1", ss)
	}
}
