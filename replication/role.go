package replication

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// pollEvery is how often the role addresses are read besides the address
// events (a missed event costs at most this long).
const pollEvery = time.Second

// holds reports whether every address of want is on a local interface.
func holds(want []netip.Addr) (bool, error) {
	have, err := net.InterfaceAddrs()
	if err != nil {
		return false, err
	}
	local := make(map[netip.Addr]bool, len(have))
	for _, a := range have {
		if p, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok {
				local[ip.Unmap()] = true
			}
		}
	}
	for _, a := range want {
		if !local[a.Unmap()] {
			return false, nil
		}
	}
	return true, nil
}

// watchRole calls fn with whether the router holds every role address, at
// once and whenever that changes, until ctx is done. Address changes are
// learnt from rtnetlink events (RTM_NEWADDR, RTM_DELADDR) where the
// platform has them, and from a poll every pollEvery.
func watchRole(ctx context.Context, want []netip.Addr, fn func(active bool)) error {
	events := addressEvents(ctx)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	known, first := false, true
	for {
		active, err := holds(want)
		if err == nil && (first || active != known) {
			known, first = active, false
			fn(active)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-events:
		case <-tick.C:
		}
	}
}
