package switchboard

import (
	"context"
	"fmt"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// Reinstall puts the table and every session's legs back after someone
// else removed or changed them under the running daemon (a `nft flush
// ruleset`, a `nft delete table`): Setup recreates the table, its sets and
// rules, and what the kernel lacks of the sessions' legs is added, as Start
// repairs after a restart. Conntrack entries survive a flush, so
// established flows take up their NAT again as soon as the rules are back.
// why is what the caller saw (logged). It returns how many legs were
// installed again.
func (m *Manager) Reinstall(ctx context.Context, why error) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.dp.Setup(ctx, m.gates()); err != nil {
		return 0, fmt.Errorf("reinstall: %w", err)
	}
	have, err := m.dp.Legs(ctx)
	if err != nil {
		return 0, fmt.Errorf("reinstall: %w", err)
	}
	repair := diffLegs(have, m.allLegs())
	if err := m.applyChunked(ctx, repair); err != nil {
		return 0, fmt.Errorf("reinstall: %w", err)
	}
	// From this reading on the table is again what the journal's own
	// transactions make of it, and a gen record says so.
	if _, err := m.readGeneration(ctx); err == nil && m.j != nil {
		if err := m.j.mark(); err != nil {
			m.log.Warn("journal: recording the generation after reinstalling failed", "err", err)
		}
	}
	m.log.Warn("relay table was removed or changed by someone else; reinstalled it",
		"why", why, "sessions", len(m.sessions), "legs_added", len(repair.Add), "legs_removed", len(repair.Remove))
	return len(repair.Add), nil
}

// CheckSample calls check with the installed legs of up to n sessions
// (which ones is Go's map order), with the lock held and no change in
// flight, so that the kernel holds exactly those legs meanwhile. The table
// watch looks them up after a foreign commit (relay.ElementChecker): a set
// someone flushed lacks them, and Reinstall puts them back. With no
// session there is nothing to look up and check is not called.
func (m *Manager) CheckSample(ctx context.Context, n int, check func(context.Context, []relay.Leg) error) error {
	m.lockSettled()
	defer m.mu.Unlock()
	var legs []relay.Leg
	for _, e := range m.sessions {
		if n <= 0 {
			break
		}
		if l := m.installed(e); l != nil {
			legs = append(legs, l...)
			n--
		}
	}
	if len(legs) == 0 {
		return nil
	}
	return check(ctx, legs)
}
