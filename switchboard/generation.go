package switchboard

import (
	"context"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// genTracker is the ruleset generation the kernel is at as far as the
// Manager knows it: from each Apply's answer and each Generation reading.
// The journal stamps its records with it (journal.generations). Guarded by
// Manager.mu.
type genTracker struct {
	g  relay.Generation
	ok bool
}

// Expected returns the generation after the Manager's last transaction,
// if the dataplane knew it.
func (t *genTracker) Expected() (relay.Generation, bool) { return t.g, t.ok }

func (t *genTracker) set(g relay.Generation) { t.g, t.ok = g, g.ID != 0 && g.Own }

// apply commits b through the dataplane and tracks the generation it
// answers.
func (m *Manager) apply(ctx context.Context, b relay.Batch) error {
	g, err := m.dp.Apply(ctx, b)
	if err == nil || g.ID != 0 {
		m.gen.set(g)
	} else {
		m.gen.set(relay.Generation{}) // a failed transaction: unknown until read
	}
	return err
}

// readGeneration reads the kernel's generation and tracks it.
func (m *Manager) readGeneration(ctx context.Context) (relay.Generation, error) {
	g, err := m.dp.Generation(ctx)
	if err != nil {
		m.gen.set(relay.Generation{})
		return g, err
	}
	m.gen.set(g)
	return g, nil
}
