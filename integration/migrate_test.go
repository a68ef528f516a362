//go:build linux && integration

package integration

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// unsizeTable rebuilds the daemon's table as daemons before sized sets
// made it, with the nft CLI, in one transaction: the same sets, elements
// and rules, the sets without a size (the kernel's rhashtable).
func unsizeTable(t *testing.T, lab *netlab.Lab) {
	t.Helper()
	listing := nftTable(t, lab)
	// The learned maps (dynamic) had their size before. The nft CLI cannot
	// build the rules that fill them and map a flow to its reverse leg's
	// learned source (an assertion fails); they only serve new flows, and
	// the restart puts every rule back.
	unsized := regexp.MustCompile(`(?m)^\s*size (\d+)\n`).ReplaceAllStringFunc(listing, func(line string) string {
		if strings.Contains(line, "16777215") {
			return line
		}
		return ""
	})
	unsized = regexp.MustCompile(`(?m)^.*@learned[46].*\n`).ReplaceAllString(unsized, "")
	script := "delete table inet nftrtpproxy\n" + unsized
	file := filepath.Join(t.TempDir(), "unsized.nft")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Router.Run(context.Background(), "nft", "-f", file); err != nil {
		t.Fatalf("nft -f (old layout): %v: %s\n%s", err, out, script)
	}
	if l := nftTable(t, lab); strings.Count(l, "size ") != 2 {
		t.Fatalf("the rebuilt table has other sized sets than the learned maps:\n%s", l)
	}
}

// setHandles maps each set of the daemon's table to its handle: a set made
// anew, whose kernel backend is chosen anew, has another. (The kernel
// takes a set re-added with a size as an update of the size alone.)
func setHandles(t *testing.T, lab *netlab.Lab) map[string]string {
	t.Helper()
	out, err := lab.Router.Run(context.Background(), "nft", "-a", "list", "table", "inet", "nftrtpproxy")
	if err != nil {
		t.Fatalf("nft -a list table: %v: %s", err, out)
	}
	handles := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\t(?:set|map) (\S+) \{ # handle (\d+)`).FindAllStringSubmatch(string(out), -1) {
		handles[m[1]] = m[2]
	}
	return handles
}

// Sized sets: a table of a daemon from before sets had sizes is migrated
// by the next start, while a call's media flows through it; new flows
// then find their legs in the new sets.
func TestRestartMigratesAnUnsizedTableWhileACallFlows(t *testing.T) {
	lab, d, a, b, s := startCall(t)
	a.send(t, s.GateA, 10, false)
	expect(t, "callee before the restart", b.rtpR, s.GateB, 10)

	d.stop()
	unsizeTable(t, lab)
	old := setHandles(t, lab)
	b.rtpR.Reset()
	const packets = 400 // 2 s, 5 ms apart
	sent := make(chan error, 1)
	go func() { sent <- netlab.SendRTP(a.rtp, s.GateA, 0x1234, packets, 5*time.Millisecond) }()
	time.Sleep(200 * time.Millisecond)
	d.start()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = b.rtpR.WaitCount(c, packets)
	if got := b.rtpR.Sources()[s.GateB]; got < packets*95/100 {
		t.Errorf("across the migrating restart the callee received %d of %d packets, want at least 95%%\n%s", got, packets, d.logText())
	}

	listing := nftTable(t, lab)
	if n := strings.Count(listing, "\t\tsize "); n != 15 {
		t.Errorf("%d sized sets after the restart, want 15:\n%s", n, listing)
	}
	for name, h := range setHandles(t, lab) {
		if old[name] == h {
			t.Errorf("set %s keeps its handle %s across the restart: not made anew", name, h)
		}
	}
	// New flows (the call's RTCP, a new call) look up the new sets.
	b.rtcpR.Reset()
	a.send(t, s.GateA, 10, true)
	expect(t, "callee's RTCP after the migration", b.rtcpR, netip.AddrPortFrom(s.GateB.Addr(), s.GateB.Port()+1), 10)
	b2 := newPeer(t, lab.Callee, lab.CalleeAddr, 5020)
	s2, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b2.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	a.send(t, s2.GateA, 10, false)
	expect(t, "a new call after the migration", b2.rtpR, s2.GateB, 10)
}
