//go:build linux && integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// restartConfig has four switchboards of 32,256 port pairs each: room for
// 100k sessions.
func restartConfig(stateDir string) string {
	c := fmt.Sprintf("state-dir = %q\n", stateDir)
	for i := 1; i <= 4; i++ {
		c += fmt.Sprintf(`[[switchboard]]
name = "sb%d"
gate-a = { address = "192.0.2.%d", ports = "1024-65535" }
gate-b = { address = "10.0.0.%d", ports = "1024-65535" }
`, i, i, i)
	}
	return c
}

// writeJournal writes n answered sessions with signalled peers into the
// journal of stateDir, as a daemon that ran for a while would have left it.
// Their learning windows are closed, so every leg carries a lock.
func writeJournal(tb testing.TB, stateDir string, n int) {
	tb.Helper()
	f, err := os.Create(filepath.Join(stateDir, "sessions.journal"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	t0 := time.Now().Add(-time.Hour)
	const pairs = 32256
	for i := range n {
		sb, port := 1+i/pairs, uint16(1024+2*(i%pairs))
		peerA := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 4000)
		peerB := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), 5000)
		s := &switchboard.Session{ID: fmt.Sprintf("s%07d", i), Switchboard: fmt.Sprintf("sb%d", sb), Index: uint32(i + 1),
			GateA: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(sb)}), port),
			GateB: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(sb)}), port),
			A:     switchboard.Peer{Signalled: switchboard.Endpoint{RTP: peerA}, LearnUntil: t0.Add(10 * time.Second)},
			B:     switchboard.Peer{Signalled: switchboard.Endpoint{RTP: peerB}, LearnUntil: t0.Add(10 * time.Second)},
			State: switchboard.Active, Created: t0, Updated: t0,
			Labels: map[string]string{"call-id": fmt.Sprintf("call-%d@example.org", i)}}
		if err := enc.Encode(map[string]any{"op": "put", "session": s}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkKernelRestart measures Manager.Start with 25k, 50k and 100k
// sessions in the journal and the kernel: "clean" after a stop with
// nothing changed since, "foreign" after someone else committed to the
// namespace's ruleset while the daemon was down (the full listing). Run it
// with -benchtime=1x.
func BenchmarkKernelRestart(b *testing.B) {
	for _, n := range []int{25000, 50000, 100000} {
		for _, mode := range []string{"clean", "foreign"} {
			b.Run(fmt.Sprintf("sessions=%d/%s", n, mode), func(b *testing.B) {
				fd, ns := benchNSNamed(b)
				dir := b.TempDir()
				cfg, err := switchboard.ParseConfig([]byte(restartConfig(dir)))
				if err != nil {
					b.Fatal(err)
				}
				writeJournal(b, dir, n)
				m, dp, took := startManager(b, fd, cfg, nil) // installs every leg
				b.Logf("first start (installs %d sessions): %s", n, took.Round(time.Millisecond))
				for b.Loop() {
					b.StopTimer()
					m.Close()
					dp.Close()
					if mode == "foreign" {
						if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "add", "table", "ip", "someone-else").CombinedOutput(); err != nil {
							b.Fatalf("nft: %v: %s", err, out)
						}
					}
					b.StartTimer()
					m, dp, _ = startManager(b, fd, cfg, nil)
					b.StopTimer()
					if got := len(m.List()); got != n {
						b.Fatalf("restored %d sessions, want %d", got, n)
					}
					b.StartTimer()
				}
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/start")
				m.Close()
				dp.Close()
			})
		}
	}
}
