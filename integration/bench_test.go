//go:build linux && integration

package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng/ngcalls"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng/ngtest"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/zeebo/bencode"
)

// benchNS creates a bare network namespace for a benchmark and returns an
// open fd of it; no traffic flows, only kernel state is installed.
func benchNS(b *testing.B) int {
	b.Helper()
	fd, _ := benchNSNamed(b)
	return fd
}

// benchNSNamed is benchNS that also returns the namespace's name.
func benchNSNamed(b testing.TB) (int, string) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("kernel benchmark needs root to create a network namespace")
	}
	if name := os.Getenv("NRP_BENCH_NETNS"); name != "" {
		return givenNS(b, name)
	}
	s := make([]byte, 3)
	_, _ = rand.Read(s)
	name := "nrp-bench-" + hex.EncodeToString(s)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Skipf("ip netns add: %v: %s", err, out)
	}
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		f.Close()
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	return int(f.Fd()), name
}

// givenNS opens the existing namespace name for a benchmark, which runs no
// program then: valgrind's callgrind (instruction counts, repeatable on a
// loaded machine) cannot follow the SIGCHLD of "ip netns add". Usage:
//
//	ip netns add nrp-cg-$RANDOM; NRP_BENCH_NETNS=nrp-cg-… GODEBUG=asyncpreemptoff=1 \
//	  valgrind --tool=callgrind ./integration.test -test.bench KernelNGCall -test.benchtime 200x
//
// The namespace is the caller's to delete.
func givenNS(b testing.TB, name string) (int, string) {
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		b.Fatalf("NRP_BENCH_NETNS: %v", err)
	}
	b.Cleanup(func() { f.Close() })
	return int(f.Fd()), name
}

// benchConfig has two switchboards of 32,256 port pairs each, room for 50k
// live sessions plus the measured ones.
func benchConfig(stateDir string) string {
	return fmt.Sprintf(`state-dir = %q
[[switchboard]]
name = "one"
gate-a = { address = "192.0.2.1", ports = "1024-65535" }
gate-b = { address = "10.0.0.1", ports = "1024-65535" }
[[switchboard]]
name = "two"
gate-a = { address = "192.0.2.2", ports = "1024-65535" }
gate-b = { address = "10.0.0.2", ports = "1024-65535" }
`, stateDir)
}

// benchManager starts a Manager on the real kernel in a namespace of its
// own, with benchConfig; both close when the benchmark ends.
func benchManager(b *testing.B) (*switchboard.Manager, *switchboard.Config) {
	b.Helper()
	fd := benchNS(b)
	cfg, err := switchboard.ParseConfig([]byte(benchConfig(b.TempDir())))
	if err != nil {
		b.Fatal(err)
	}
	m, dp, _ := startManager(b, fd, cfg, nil)
	b.Cleanup(func() {
		m.Close()
		dp.Close()
	})
	return m, cfg
}

// BenchmarkKernelAllocDelete measures one session alloc plus delete through
// the Manager against the real kernel (one nftables transaction and one
// journal record each), with 0 and 50k sessions already installed. The
// per-op time should not grow with the table.
func BenchmarkKernelAllocDelete(b *testing.B) {
	for _, live := range []int{0, 50000} {
		b.Run(fmt.Sprintf("live=%d", live), func(b *testing.B) {
			m, _ := benchManager(b)
			ctx := context.Background()
			req := func(i int) switchboard.AllocRequest {
				sb := "one"
				if i%2 == 1 {
					sb = "two"
				}
				return switchboard.AllocRequest{Switchboard: sb}
			}
			for i := range live {
				if _, err := m.Alloc(ctx, req(i)); err != nil {
					b.Fatalf("installing live session %d: %v", i, err)
				}
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				s, err := m.Alloc(ctx, req(i))
				if err != nil {
					b.Fatal(err)
				}
				if err := m.Delete(ctx, s.ID); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
		})
	}
}

// BenchmarkKernelNGCall measures one call over ng as Kamailio's rtpengine
// module drives it (offer + answer + delete, each a UDP round trip on
// loopback) through the daemon's layers in-process: ng server, call table,
// SDP engine, Manager and the real kernel. It is the control-plane cost
// that cmd/nftrtpbench compares with rtpengine, here without a
// second process so that a CPU profile sees all of it.
//
// The Manager runs as in the daemon (Run: timers and the flow watch), so
// that a delete's statistics read the session's known flows by tuple rather
// than walking the conntrack table (switchboard/inspect.go).
func BenchmarkKernelNGCall(b *testing.B) { benchNGCalls(b, 1) }

// BenchmarkKernelNGCallParallel is BenchmarkKernelNGCall with eight
// clients at once, as cmd/nftrtpbench's eight load clients: the Manager's
// serial part (its lock, the kernel transaction, the journal) bounds it.
func BenchmarkKernelNGCallParallel(b *testing.B) { benchNGCalls(b, 8) }

// ngSockets is how many sockets the daemon serves ng on
// (cmd/nftrtpproxy).
const ngSockets = 16

// benchNGCalls runs b.N calls (offer, answer, delete) from clients ng
// clients at once.
func benchNGCalls(b *testing.B, clients int) {
	m, cfg := benchManager(b)
	runManager(b, m)
	cl := calls.New(m, sdprelay.New(m), cfg.Switchboards, "one")
	sdpOf := func(addr string, port int) string {
		return "v=0\r\no=- 1 1 IN IP4 " + addr + "\r\ns=-\r\nc=IN IP4 " + addr + "\r\nt=0 0\r\n" +
			"m=audio " + strconv.Itoa(port) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
	}
	// The client costs little next to the server: each request is its
	// call-id before the rest of its dictionary, encoded once ("call-id"
	// sorts first of its keys), and only a reply's result is read.
	rest := func(req map[string]any) []byte {
		body, err := bencode.EncodeBytes(req)
		if err != nil {
			b.Fatal(err)
		}
		return body[1:]
	}
	flags := []string{"trust-address"}
	offer := rest(map[string]any{"command": "offer", "from-tag": "a", "flags": flags, "sdp": sdpOf("192.0.2.10", 4000)})
	answer := rest(map[string]any{"command": "answer", "from-tag": "a", "to-tag": "b", "flags": flags, "sdp": sdpOf("10.0.0.10", 5000)})
	del := rest(map[string]any{"command": "delete", "from-tag": "a"})
	addr := ngtest.ServeSockets(b, ngcalls.New(cl), ng.Options{}, ngSockets)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ngtest.Dial(b, addr)
			var body []byte
			do := func(cookie, id string, rest []byte) {
				body = append(strconv.AppendInt(append(body[:0], "d7:call-id"...), int64(len(id)), 10), ':')
				body = append(append(body, id...), rest...)
				if r := c.Exchange(cookie, body); ngtest.ResultOf(r) != "ok" {
					b.Errorf("%s: %q", cookie, r)
				}
			}
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				id := "bench-" + strconv.Itoa(w) + "-" + strconv.FormatInt(i, 10)
				do(id+"o", id, offer)
				do(id+"a", id, answer)
				do(id+"d", id, del)
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// runManager runs m until the benchmark ends and waits until its flow
// watch has read the flows that exist (200 ms after subscribing, learn.go).
func runManager(b *testing.B, m *switchboard.Manager) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	time.Sleep(time.Second)
}

// applies counts the Manager's kernel transactions.
type applies struct {
	relay.Dataplane
	n atomic.Int64
}

func (a *applies) Apply(ctx context.Context, b relay.Batch) (relay.Generation, error) {
	a.n.Add(1)
	return a.Dataplane.Apply(ctx, b)
}

// BenchmarkKernelAllocDeleteParallel is BenchmarkKernelAllocDelete from 8
// concurrent clients: requests that meet share a transaction and a journal
// write (group commit). It reports the requests per kernel transaction.
func BenchmarkKernelAllocDeleteParallel(b *testing.B) {
	fd := benchNS(b)
	cfg, err := switchboard.ParseConfig([]byte(benchConfig(b.TempDir())))
	if err != nil {
		b.Fatal(err)
	}
	var counted *applies
	m, dp, _ := startManager(b, fd, cfg, func(dp relay.Dataplane) relay.Dataplane {
		counted = &applies{Dataplane: dp}
		return counted
	})
	b.Cleanup(func() { m.Close(); dp.Close() })
	ctx := context.Background()
	before := counted.n.Load()
	b.SetParallelism(4) // 8 clients on 2 CPUs
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s, err := m.Alloc(ctx, switchboard.AllocRequest{Switchboard: "one"})
			if err != nil {
				b.Error(err)
				return
			}
			if err := m.Delete(ctx, s.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(2*b.N)/float64(counted.n.Load()-before), "requests/transaction")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}

// BenchmarkKernelNGPing is the floor of BenchmarkKernelNGCall: one ng
// round trip through the same server and client, which the server answers
// without any work. A call is three requests.
func BenchmarkKernelNGPing(b *testing.B) {
	m, cfg := benchManager(b)
	runManager(b, m)
	cl := calls.New(m, sdprelay.New(m), cfg.Switchboards, "one")
	c := ngtest.Dial(b, ngtest.ServeSockets(b, ngcalls.New(cl), ng.Options{}, ngSockets))
	for i := 0; b.Loop(); i++ {
		if r := c.Exchange("p"+strconv.Itoa(i), []byte("d7:command4:pinge")); ngtest.ResultOf(r) != "pong" {
			b.Fatalf("%q", r)
		}
	}
}
