//go:build linux && integration

package integration

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// listings counts how often the Manager lists the table.
type listings struct {
	relay.Dataplane
	n atomic.Int32
}

func (l *listings) Legs(ctx context.Context) ([]relay.Leg, error) {
	l.n.Add(1)
	return l.Dataplane.Legs(ctx)
}

// A restart trusts the journal only while the namespace's ruleset
// generation is the one its last record carries: after an element added
// with the nft CLI (a commit the daemon did not make), or any other
// table's commit, it lists the table and removes the orphan. The kernel
// and the nft CLI are the oracles.
func TestKernelRestartTrustsTheJournalOnlyWhileTheGenerationHolds(t *testing.T) {
	fd, ns := benchNSNamed(t)
	dir := t.TempDir()
	cfg, err := switchboard.ParseConfig([]byte(restartConfig(dir)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := func() (*switchboard.Manager, *listings) {
		t.Helper()
		var l *listings
		m, dp, _ := startManager(t, fd, cfg, func(dp relay.Dataplane) relay.Dataplane {
			l = &listings{Dataplane: dp}
			return l
		})
		t.Cleanup(func() { m.Close(); dp.Close() })
		return m, l
	}
	nftIn := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("nft %v: %v: %s", args, err, out)
		}
		return string(out)
	}

	m, _ := start()
	a, err := m.Alloc(ctx, switchboard.AllocRequest{Switchboard: "sb1", A: switchboard.Endpoint{RTP: netip.MustParseAddrPort("198.51.100.7:4000")}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Alloc(ctx, switchboard.AllocRequest{Switchboard: "sb2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	m.Close()
	before := nftIn("list", "table", "inet", relay.TableName)

	m, l := start()
	if n := l.n.Load(); n != 0 {
		t.Errorf("a clean restart listed the table %d times", n)
	}
	if after := nftIn("list", "table", "inet", relay.TableName); after != before {
		t.Errorf("a clean restart changed the table:\n%s\nwas:\n%s", after, before)
	}
	if _, err := m.Get(a.ID); err != nil {
		t.Errorf("session after a clean restart: %v", err)
	}
	m.Close()

	// Behind the daemon's back, while it is down.
	nftIn("add", "element", "inet", relay.TableName, "leg4", "{ 192.0.2.1 . 30990 : 0x52ffff00 }")
	m, l = start()
	if n := l.n.Load(); n != 1 {
		t.Errorf("restart after a foreign element listed the table %d times, want 1", n)
	}
	if after := nftIn("list", "table", "inet", relay.TableName); strings.Contains(after, "30990") || after != before {
		t.Errorf("the orphan survived the restart:\n%s", after)
	}

	// Behind its back while it runs, in another table: the generation
	// moves all the same, and the daemon cannot tell what changed.
	nftIn("add", "table", "ip", "someone-else")
	if _, err := m.Update(ctx, a.ID, switchboard.UpdateRequest{B: &switchboard.Endpoint{RTP: netip.MustParseAddrPort("203.0.113.5:5000")}}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	_, l = start()
	if n := l.n.Load(); n != 1 {
		t.Errorf("restart after a foreign commit while running listed the table %d times, want 1", n)
	}
}
