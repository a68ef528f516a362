//go:build linux && integration

package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// floodBudget is the reply cache budget of the flood test: small, so that
// a cache bounded only by its entries (65,536) would outgrow it many times.
const floodBudget = 1 << 20

// A flood of junk ng datagrams, each with its own cookie, neither slows
// the daemon's answers nor grows it beyond its reply cache budget: its
// memory after 2N datagrams is what it was after N. Two floods: the
// issue's (60 KB datagrams, 2 KB cookies, refused for their cookie and
// never cached) and one of 200-byte cookies, whose error replies the
// cache keeps within its budget.
func TestNGJunkFloodLeavesTheDaemonAnsweringAndBounded(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, controlConfig(lab, t.TempDir(),
		fmt.Sprintf("ng = \"127.0.0.1:2223\"\nreply-cache-bytes = %d\n", floodBudget)))
	flood := dialNG(t, lab)
	for _, tc := range []struct {
		name       string
		n          int
		size       int
		cookieSize int
	}{
		{"60 KB datagrams with 2 KB cookies", 3000, 60 << 10, 2 << 10},
		{"1 KB datagrams with 200-byte cookies", 10000, 1 << 10, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sendJunk(t, flood, tc.name, 0, tc.n/4, tc.size, tc.cookieSize) // warm up the workers' buffers
			base := rssKiB(t, d.cmd.Process.Pid)
			sendJunk(t, flood, tc.name, tc.n/4, tc.n, tc.size, tc.cookieSize)
			afterN := rssKiB(t, d.cmd.Process.Pid)
			sendJunk(t, flood, tc.name, tc.n, 2*tc.n, tc.size, tc.cookieSize)
			after2N := rssKiB(t, d.cmd.Process.Pid)
			start := time.Now()
			if got := ngCall(t, lab, "after-flood", map[string]any{"command": "ping"}); got["result"] != "pong" {
				t.Fatalf("ping after the flood: %v", got)
			}
			t.Logf("%d datagrams: RSS %d KiB at N/4, %d at N, %d at 2N; a ping after it answered in %v",
				2*tc.n, base, afterN, after2N, time.Since(start))
			// Growth beyond the budget, or growth from N to 2N beyond a
			// quarter of it plus GC noise, is memory the flood made the
			// daemon hold.
			if grew := after2N - base; grew > (floodBudget+8<<20)>>10 {
				t.Errorf("RSS grew %d KiB over the flood, above the %d KiB budget plus 8 MiB", grew, floodBudget>>10)
			}
			if grew := after2N - afterN; grew > (floodBudget/4+2<<20)>>10 {
				t.Errorf("RSS grew %d KiB from N to 2N datagrams: not flat", grew)
			}
		})
	}
	if log := d.logText(); !strings.Contains(log, "cookie too long") {
		t.Error("the daemon did not log refusing the long cookies")
	}
}

// dialNG is a UDP socket in the router's namespace towards the ng port.
func dialNG(t *testing.T, lab *netlab.Lab) net.Conn {
	t.Helper()
	var conn net.Conn
	if err := lab.Router.Do(func() error {
		var err error
		conn, err = net.Dial("udp", "127.0.0.1:2223")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sendJunk sends datagrams from to to-1 of the flood named name: each a
// distinct cookie of cookieSize bytes and junk up to size bytes, and waits
// for each one's error reply, so that every datagram reaches the daemon
// rather than overflowing the socket buffers.
func sendJunk(t *testing.T, conn net.Conn, name string, from, to, size, cookieSize int) {
	t.Helper()
	junk := bytes.Repeat([]byte{'x'}, size)
	buf := make([]byte, 1<<16)
	for i := from; i < to; i++ {
		cookie := fmt.Sprintf("%s-%d-", strings.ReplaceAll(name, " ", "_"), i)
		cookie += strings.Repeat("c", max(0, cookieSize-len(cookie)))
		msg := append(append([]byte(cookie), ' '), junk[:size-len(cookie)-1]...)
		if _, err := conn.Write(msg); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: no reply: %v", i, err)
		}
		if !bytes.HasPrefix(buf[:n], []byte(cookie+" d")) || !bytes.Contains(buf[:n], []byte("6:result5:error")) {
			t.Fatalf("datagram %d: reply %.200q, want an error under its cookie", i, buf[:n])
		}
	}
}

// rssKiB is the resident set of process pid, from /proc/PID/status.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kib
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
