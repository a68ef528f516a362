package httpapi

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// Behind a 1:1 NAT the switchboards show both the local and the advertised
// address of a gate, and the SDP endpoints write the advertised one.
func TestAdvertisedAddressIsShownAndWrittenIntoSDP(t *testing.T) {
	cfg := switchboardtest.Config(t, "30000-30003", "")
	cfg.Switchboards[0].B.Advertise = netip.MustParseAddr("203.0.113.9")
	m, _ := switchboardtest.Manager(t, cfg)
	srv := httptest.NewServer(NewServer(m, sdprelay.New(m, cfg.Switchboards...), nil))
	t.Cleanup(srv.Close)
	c := &Client{Base: srv.URL}
	ctx := context.Background()
	v, err := c.Switchboards(ctx)
	want := []SwitchboardView{{Name: "edge",
		GateA: Gate{Name: "external", Address: "192.0.2.1", Ports: "30000-30003"},
		GateB: Gate{Name: "internal", Address: "10.0.0.1", Ports: "30000-30003", Advertise: "203.0.113.9"}}}
	if diff := cmp.Diff(want, v); err != nil || diff != "" {
		t.Errorf("switchboards: %v (-want +got):\n%s", err, diff)
	}
	offer := "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	res, err := c.AllocSDP(ctx, sdprelay.Request{Switchboard: "edge", From: switchboard.SideA, SDP: offer})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.SDP, "c=IN IP4 203.0.113.9\r\n") {
		t.Errorf("SDP towards the b-side:\n%s\nwant the advertised 203.0.113.9", res.SDP)
	}
}
