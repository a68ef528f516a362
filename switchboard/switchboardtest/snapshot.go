package switchboardtest

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Snapshot describes what a request can change: each session's
// switchboard, gates, signalled peers, state and labels, and the legs the
// dataplane holds, one line each in a stable order. Comparing the
// snapshots around a refused request shows whether it left everything as
// it was.
func Snapshot(t testing.TB, m *switchboard.Manager, mem *relaytest.Memory) string {
	t.Helper()
	var lines []string
	for _, s := range m.List() {
		lines = append(lines, fmt.Sprintf("session %s %s %s %s a=%s b=%s %s %v", s.ID, s.Switchboard, s.GateA, s.GateB,
			endpoint(s.A.Signalled), endpoint(s.B.Signalled), s.State, s.Labels))
	}
	legs, err := mem.Legs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range legs {
		lines = append(lines, fmt.Sprintf("leg %#x %s → %s from %s lock %s", l.Mark, l.Gate, l.Peer, l.Source, l.Lock))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func endpoint(e switchboard.Endpoint) string {
	return fmt.Sprintf("%s/%s/%v", addrPort(e.RTP), addrPort(e.RTCP), e.Hold)
}

func addrPort(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "-"
	}
	return ap.String()
}
