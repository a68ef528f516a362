package sdprelay

import (
	"context"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"net/netip"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// Behind a 1:1 NAT gate-b's local address is 10.0.0.1 and its public one
// 203.0.113.9: the SDP towards the b-side carries the public one, the
// session (and so the kernel) the local one; the a-side's SDP carries
// gate-a's own address, which advertises nothing.
func TestSDPCarriesTheAdvertisedAddressTheSessionTheLocalOne(t *testing.T) {
	cfg := switchboardtest.Config(t, "30000-30005", "")
	cfg.Switchboards[0].B.Advertise = netip.MustParseAddr("203.0.113.9")
	m, _ := switchboardtest.Manager(t, cfg)
	e := New(m, cfg.Switchboards...)
	ctx := context.Background()
	res, err := e.Alloc(ctx, Request{Switchboard: "edge", From: switchboard.SideA, SDP: offer, ReplaceOrigin: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.SDP, "c=IN IP4 203.0.113.9\r\n") || !strings.Contains(res.SDP, "o=- 1 1 IN IP4 203.0.113.9\r\n") ||
		strings.Contains(res.SDP, "10.0.0.1") {
		t.Errorf("offer towards the b-side:\n%s\nwant 203.0.113.9 in c= and o=, never 10.0.0.1", res.SDP)
	}
	s, err := m.Get(res.Sessions[0])
	if err != nil {
		t.Fatal(err)
	}
	if s.GateB.Addr().String() != "10.0.0.1" {
		t.Errorf("session gate-b %s, want the local 10.0.0.1", s.GateB)
	}
	answer := strings.ReplaceAll(offer, "192.0.2.10", "10.0.0.10")
	res, err = e.Update(ctx, Request{From: switchboard.SideB, SDP: answer, Sessions: res.Sessions, Answer: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.SDP, "c=IN IP4 192.0.2.1\r\n") {
		t.Errorf("answer towards the a-side:\n%s\nwant gate-a's own 192.0.2.1", res.SDP)
	}
}
