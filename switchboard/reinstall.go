package switchboard

import (
	"context"
	"fmt"
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
