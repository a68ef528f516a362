package ngcalls

import (
	"context"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// counted is a Traffic whose totals the test sets.
type counted struct{ packets, bytes uint64 }

func (c *counted) Traffic(context.Context) (uint64, uint64, error) { return c.packets, c.bytes, nil }

func TestStatisticsReportTheRelayedTotalsAndTheirRates(t *testing.T) {
	cfg := switchboardtest.Config(t, "30000-30003", "")
	m, _ := switchboardtest.Manager(t, cfg)
	b := New(calls.New(m, sdprelay.New(m), cfg.Switchboards, "edge"))
	start := time.Unix(1700000000, 0)
	now := start
	b.started, b.now = start, func() time.Time { return now }
	tr := &counted{}
	b.Traffic = tr
	for _, step := range []struct {
		name                      string
		after                     time.Duration
		packets, bytes            uint64
		wantRelayed, wantPPS, wBs uint64
	}{
		{"the first request averages since start", 10 * time.Second, 500, 86000, 500, 50, 8600},
		{"the next one the interval since the first", 2 * time.Second, 700, 120400, 700, 100, 17200},
		{"one within a second repeats the rates", 100 * time.Millisecond, 900, 154800, 900, 100, 17200},
	} {
		now = now.Add(step.after)
		tr.packets, tr.bytes = step.packets, step.bytes
		got, err := b.Statistics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got.RelayedPackets != step.wantRelayed || got.PacketRate != step.wantPPS || got.ByteRate != step.wBs {
			t.Errorf("%s: relayed %d, %d packets/s, %d bytes/s; want %d, %d, %d", step.name,
				got.RelayedPackets, got.PacketRate, got.ByteRate, step.wantRelayed, step.wantPPS, step.wBs)
		}
	}
}
