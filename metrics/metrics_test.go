package metrics

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// rig is a Manager over the in-memory dataplane, wrapped by Metrics.
type rig struct {
	met *Metrics
	mgr *switchboard.Manager
	mem *relaytest.Memory
}

func newRig(t *testing.T) *rig {
	t.Helper()
	cfg := switchboardtest.Config(t, "30000-30009", "")
	mem := relaytest.NewMemory()
	met := New(cfg)
	mgr := switchboard.NewManager(cfg, met.Dataplane(mem), switchboard.Options{Observer: met})
	ends := mgr.Subscribe()
	if err := mgr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := met.Watch(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { mgr.Run(ctx); done <- struct{}{} }()
	go func() { ends.Each(ctx, met.SessionEnded); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done; ends.Close(); mgr.Close() })
	return &rig{met: met, mgr: mgr, mem: mem}
}

// scrape returns the exposition's sample lines by name and labels.
func (r *rig) scrape(t *testing.T) map[string]string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.met.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := map[string]string{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out
}

func (r *rig) alloc(t *testing.T) *switchboard.Session {
	t.Helper()
	s, err := r.mgr.Alloc(context.Background(), switchboard.AllocRequest{Switchboard: "edge", Ringing: true,
		Labels: map[string]string{"call-id": "c1"},
		A:      switchboard.Endpoint{RTP: netip.MustParseAddrPort("192.0.2.10:4000")},
		B:      switchboard.Endpoint{RTP: netip.MustParseAddrPort("10.0.0.10:5000")}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// flow is a flow of leg k of s with counters.
func flow(s *switchboard.Session, k uint32, packets uint64, ended bool) relay.Flow {
	gate, src, zone := s.GateA, netip.MustParseAddrPort("192.0.2.10:4000"), relay.ZoneA
	if k >= 2 {
		gate, src, zone = s.GateB, netip.MustParseAddrPort("10.0.0.10:5000"), relay.ZoneB
	}
	if k%2 == 1 {
		gate = netip.AddrPortFrom(gate.Addr(), gate.Port()+1)
		src = netip.AddrPortFrom(src.Addr(), src.Port()+1)
	}
	return relay.Flow{Mark: relay.Mark(4*s.Index + k), Zone: zone, Src: src, Dst: gate,
		Packets: packets, Bytes: 172 * packets, Ended: ended, Seen: time.Now()}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

func TestAScrapeShowsSessionsPortsTrafficAndEnds(t *testing.T) {
	r := newRig(t)
	s := r.alloc(t)
	r.mem.SetFlows(flow(s, 0, 50, false), flow(s, 2, 40, false))
	r.mem.Inject(flow(s, 1, 3, true)) // an RTCP flow the kernel ended
	eventually(t, "the ended flow counted", func() bool {
		return r.scrape(t)[`nftrtpproxy_relayed_packets_total{direction="a-to-b",switchboard="edge"}`] == "53"
	})
	got := r.scrape(t)
	for name, want := range map[string]string{
		`nftrtpproxy_sessions{state="ringing",switchboard="edge"}`:                 "1",
		`nftrtpproxy_sessions{state="active",switchboard="edge"}`:                  "0",
		`nftrtpproxy_port_pairs_free{gate="external",switchboard="edge"}`:          "4",
		`nftrtpproxy_port_pairs_free{gate="internal",switchboard="edge"}`:          "4",
		`nftrtpproxy_relayed_packets_total{direction="b-to-a",switchboard="edge"}`: "40",
		`nftrtpproxy_relayed_bytes_total{direction="b-to-a",switchboard="edge"}`:   "6880",
		`nftrtpproxy_flows`: "2",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	if c := got[`nftrtpproxy_kernel_transaction_seconds_count`]; c == "" || c == "0" {
		t.Errorf("kernel_transaction_seconds_count = %q, want the alloc's transactions", c)
	}
	if got[`nftrtpproxy_journal_bytes`] == "" || got[`nftrtpproxy_journal_bytes`] == "0" {
		t.Errorf("journal_bytes = %q, want the journal's size", got[`nftrtpproxy_journal_bytes`])
	}
	if got["go_goroutines"] == "" || got["process_open_fds"] == "" {
		t.Error("no Go runtime or process metrics")
	}
	if err := r.mgr.Delete(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the end counted", func() bool {
		return r.scrape(t)[`nftrtpproxy_session_ends_total{reason="deleted",switchboard="edge"}`] == "1"
	})
}

func TestRequestsAreCountedByProtocolAndCommandWithBoundedLabels(t *testing.T) {
	r := newRig(t)
	ng := r.met.Observe("ng")
	ng("offer", nil, time.Millisecond)
	ng("Offer", errors.New("Ran out of ports"), time.Millisecond)
	ng("\x00bad", nil, 0)
	for i := range maxCommands + 5 {
		ng(strings.Repeat("x", i%20+1)+string(rune('a'+i%26)), nil, 0)
	}
	got := r.scrape(t)
	for name, want := range map[string]string{
		`nftrtpproxy_requests_total{command="offer",protocol="ng"}`:                 "2",
		`nftrtpproxy_request_errors_total{command="offer",protocol="ng"}`:           "1",
		`nftrtpproxy_request_duration_seconds_count{command="offer",protocol="ng"}`: "2",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	n := 0
	for k := range got {
		if strings.HasPrefix(k, "nftrtpproxy_requests_total{") {
			n++
		}
	}
	if n > maxCommands+1 {
		t.Errorf("%d command labels, want at most %d and \"other\"", n, maxCommands)
	}
}

func TestTheEndLogCountsTheFlowsTheEndDeleted(t *testing.T) {
	r := newRig(t)
	var buf syncBuffer
	l := NewEndLog(slog.New(slog.NewTextHandler(&buf, nil)), r.met)
	l.settle = 200 * time.Millisecond
	ends := r.mgr.Subscribe()
	defer ends.Close()
	s := r.alloc(t)
	if err := r.mgr.Delete(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	// The DESTROY events of the flows the delete flushed come after the end.
	r.mem.Inject(flow(s, 0, 100, true))
	r.mem.Inject(flow(s, 2, 90, true))
	r.mem.Inject(flow(s, 3, 5, true))
	e, err := ends.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l.SessionEnded(e)
	eventually(t, "the call's line", func() bool { return strings.Contains(buf.String(), "call ended") })
	for _, want := range []string{"call_id=c1", "switchboard=edge", "reason=deleted", "sessions=1",
		"packets_a_to_b=100", "bytes_a_to_b=17200", "packets_b_to_a=95", "bytes_b_to_a=16340"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
