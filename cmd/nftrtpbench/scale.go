package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/daemonconfig"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// chunk is how many sessions one timing sample covers in measurement 4.
const chunk = 1000

// managerScale is measurement 4's install and removal: o.scale sessions
// through an in-process Manager on the router namespace of a fresh lab,
// one Alloc (one kernel transaction and one journal record) per session,
// not batched, then one Delete each.
func (b *bench) managerScale(ctx context.Context) {
	n := b.o.scale
	var install, remove []time.Duration // per session, by chunk
	var installAll, removeAll time.Duration
	err := withLab(ctx, func(lab *netlab.Lab) error {
		m, done, err := openManager(ctx, lab)
		if err != nil {
			return err
		}
		defer done()
		progress("Manager in-process: installing %d sessions, one transaction each", n)
		ids := make([]string, 0, n)
		install, installAll, err = timeChunks(ctx, n, func(i int) error {
			s, err := m.Alloc(ctx, scaleRequest(i))
			if err == nil {
				ids = append(ids, s.ID)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}
		progress("  %s; removing them", installAll.Round(time.Millisecond))
		remove, removeAll, err = timeChunks(ctx, n, func(i int) error { return m.Delete(ctx, ids[i]) })
		if err != nil {
			return fmt.Errorf("remove: %w", err)
		}
		progress("  %s", removeAll.Round(time.Millisecond))
		return nil
	})
	if err != nil {
		b.t.fail(4, fmt.Sprintf("%s sessions through the Manager", count(n)), err)
		return
	}
	b.scaleRow("install", n, install, installAll)
	b.scaleRow("remove", n, remove, removeAll)
}

// scaleRow compares the time per session at the end of a run with its
// start: the median of the first five chunks against the last five.
func (b *bench) scaleRow(what string, n int, perSession []time.Duration, all time.Duration) {
	first, last := median(perSession[:min(5, len(perSession))]), median(perSession[max(len(perSession)-5, 0):])
	b.t.add(4, row{what: fmt.Sprintf("%s %s sessions through the Manager, in-process, one kernel transaction + journal record per session (not batched): time per session, last ÷ first %s", what, count(n), count(5*chunk)),
		baseline: "first: " + dur(first) + "/session", measured: "last: " + dur(last) + "/session",
		ratio: ratio(last.Seconds() / first.Seconds()), goal: "flat",
		notes: fmt.Sprintf("all %s: %s (%s sessions/s)", count(n), dur(all), rate(float64(n)/all.Seconds()))})
}

// openManager starts a Manager over the kernel of lab's router namespace
// with the configuration of measurements 2–3 and a private journal.
func openManager(ctx context.Context, lab *netlab.Lab) (*switchboard.Manager, func(), error) {
	dir, err := os.MkdirTemp("", "nftrtpproxy-scale-")
	if err != nil {
		return nil, nil, err
	}
	cfg, err := daemonconfig.Parse([]byte(stateConfig(scaleConfig(lab), dir)))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	nsf, err := os.Open("/run/netns/" + lab.Router.Name)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	dp, err := relay.Open(relay.Options{NetNS: int(nsf.Fd())})
	if err != nil {
		nsf.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	m := switchboard.NewManager(cfg.Config, dp, switchboard.Options{})
	done := func() { m.Close(); dp.Close(); nsf.Close(); os.RemoveAll(dir) }
	if err := m.Start(ctx); err != nil {
		done()
		return nil, nil, err
	}
	return m, done, nil
}

// scaleRequest is session i of measurement 4, spread over the idle
// switchboards (locked at alloc, as in measurement 2).
func scaleRequest(i int) switchboard.AllocRequest {
	port := uint16(10000 + 2*(i%20000))
	return switchboard.AllocRequest{Switchboard: fmt.Sprintf("s%d", 2+i%idleBoards),
		A: switchboard.Endpoint{RTP: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), port)},
		B: switchboard.Endpoint{RTP: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.10"), port)}}
}

// timeChunks runs fn for 0..n-1 and returns the mean time per call of
// every chunk of calls, and the total.
func timeChunks(ctx context.Context, n int, fn func(int) error) ([]time.Duration, time.Duration, error) {
	var out []time.Duration
	var all time.Duration
	for lo := 0; lo < n; lo += chunk {
		if err := ctx.Err(); err != nil {
			return out, all, err
		}
		hi := min(lo+chunk, n)
		begin := time.Now()
		for i := lo; i < hi; i++ {
			if err := fn(i); err != nil {
				return out, all, fmt.Errorf("session %d: %w", i, err)
			}
		}
		took := time.Since(begin)
		all += took
		out = append(out, took/time.Duration(hi-lo))
	}
	return out, all, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}
