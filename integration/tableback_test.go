//go:build linux && integration

package integration

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// A table that comes back: `nft flush ruleset` (what Debian's
// nftables.service starts with) or `nft delete table` in the router
// mid-call, or `nft flush map` of one of its maps. The daemon notices
// within a second and reinstalls the table and the session from its own
// state; conntrack kept the flows, so media takes up again: over a 5 s
// window at 100 packets/s each way, at least 95% of the packets arrive,
// and the table lists the session's elements again.
func TestTableComesBackMidCall(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, labConfig(lab, t.TempDir(), ""))
	for _, tc := range []struct {
		name    string
		nft     string
		emptied string // a map that lost the session's elements
	}{
		{"after nft flush ruleset", "flush ruleset", "leg4"},
		{"after nft delete table", "delete table inet nftrtpproxy", "leg4"},
		// The rules stay: only the look-up of the sessions' elements after
		// the foreign commit tells. Established flows keep their NAT in
		// conntrack meanwhile; new ones would find no element.
		{"after nft flush map leg4", "flush map inet nftrtpproxy leg4", "leg4"},
		{"after nft flush map dnat4", "flush map inet nftrtpproxy dnat4", "dnat4"},
		{"after nft flush map snat4", "flush map inet nftrtpproxy snat4", "snat4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
			b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
			s, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b.endpoint()})
			if err != nil {
				t.Fatal(err)
			}
			defer d.api.Delete(ctx(t), s.ID)
			const n, every = 500, 10 * time.Millisecond
			var wg sync.WaitGroup
			for _, dir := range []struct {
				from *peer
				to   netip.AddrPort
			}{{a, s.GateA}, {b, s.GateB}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := netlab.SendRTP(dir.from.rtp, dir.to, 0x1234, n, every); err != nil {
						t.Error(err)
					}
				}()
			}
			time.Sleep(time.Second)
			if out, err := lab.Router.Run(context.Background(), "nft", tc.nft); err != nil {
				t.Fatalf("nft %s: %v: %s", tc.nft, err, out)
			}
			wg.Wait()
			time.Sleep(200 * time.Millisecond)
			for _, r := range []struct {
				who string
				got int
			}{{"callee", b.rtpR.Count()}, {"caller", a.rtpR.Count()}} {
				t.Logf("%s received %d of %d packets", r.who, r.got, n)
				if r.got < n*95/100 {
					t.Errorf("%s received %d of %d packets, want at least 95%%", r.who, r.got, n)
				}
			}
			listing := nftTable(t, lab)
			if !hasElements(listing) || !strings.Contains(listing, fmt.Sprintf("%s . %d", s.GateA.Addr(), s.GateA.Port())) {
				t.Errorf("table after reinstalling lacks the session's gate %s:\n%s", s.GateA, listing)
			}
			if out, err := lab.Router.Run(context.Background(), "nft", "list", "map", "inet", "nftrtpproxy", tc.emptied); err != nil || !hasElements(string(out)) {
				t.Errorf("map %s after reinstalling has no elements (%v):\n%s", tc.emptied, err, out)
			}
			if !strings.Contains(d.logText(), "reinstalled it") {
				t.Errorf("the daemon did not log reinstalling the table")
			}
		})
	}
}
