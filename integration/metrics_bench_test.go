//go:build linux && integration

package integration

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/nftrtpproxy/nftrtpproxy/metrics"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// BenchmarkKernelScrape measures one Prometheus scrape of the daemon's
// metrics with 50k sessions, each with a conntrack entry per direction
// (100k relay flows, created with the relay's marks and zones): the
// sessions are counted under the Manager's lock and the relay's flows
// dumped for the traffic counters.
func BenchmarkKernelScrape(b *testing.B) {
	const sessions = 50000
	fd := benchNS(b)
	cfg, err := switchboard.ParseConfig([]byte(benchConfig(b.TempDir())))
	if err != nil {
		b.Fatal(err)
	}
	dp, err := relay.Open(relay.Options{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	met := metrics.New(cfg)
	m := switchboard.NewManager(cfg, met.Dataplane(dp), switchboard.Options{Observer: met})
	b.Cleanup(func() { m.Close(); dp.Close() })
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := met.Watch(m); err != nil {
		b.Fatal(err)
	}
	ct, err := conntrack.Dial(&netlink.Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	defer ct.Close()
	for i := range sessions {
		s, err := m.Alloc(ctx, switchboard.AllocRequest{Switchboard: []string{"one", "two"}[i%2]})
		if err != nil {
			b.Fatalf("session %d: %v", i, err)
		}
		for k, gate := range []struct {
			addr uint16
			zone uint16
		}{{s.GateA.Port(), relay.ZoneA}, {s.GateB.Port(), relay.ZoneB}} {
			dst := s.GateA.Addr()
			if k == 1 {
				dst = s.GateB.Addr()
			}
			f := conntrack.NewFlow(unix.IPPROTO_UDP, 0, s.GateA.Addr().Prev(), dst, 4000, gate.addr, 600, relay.Mark(4*s.Index+uint32(2*k)))
			f.Zone = gate.zone
			if err := ct.Create(f); err != nil {
				b.Fatalf("flow of session %d: %v", i, err)
			}
		}
	}
	h := met.Handler()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			b.Fatalf("scrape: %d %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	flows, _ := dp.Flows(ctx)
	b.ReportMetric(float64(len(flows)), "flows")
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/scrape")
}
