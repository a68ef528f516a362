package relay

import (
	"context"
	"errors"
	"time"
)

// TableChecker is a Dataplane that can tell, cheaply, whether its table
// still holds what Setup installed. The Linux dataplane is one.
type TableChecker interface {
	// TableIntact returns nil if the table and the rules of the last Setup
	// are in place, or an error saying what is missing or changed.
	TableIntact(ctx context.Context) error
}

// DefaultWatchInterval is how often a TableWatch reads the ruleset
// generation: a tenth of a second (GETGEN costs microseconds), so that a
// lost table is put back well within a second and few packets are lost.
const DefaultWatchInterval = 100 * time.Millisecond

// TableWatch notices when someone else removes or changes the relay's
// table under a running daemon (Debian's nftables.service starts with
// `flush ruleset`) and calls Lost to put it back.
//
// It polls the ruleset generation (NFT_MSG_GETGEN, microseconds) rather
// than listening to the nftables notification group NFNLGRP_NFTABLES: with
// a listener present the kernel builds a notification for every set
// element of every transaction (nf_tables_setelem_notify), so the
// daemon's own batches of thousands of elements would flood the listener
// that only cares about a rare foreign commit. Only a generation that was
// not the dataplane's own (Generation.Own) costs a look at the table
// (TableChecker), and only a table found broken calls Lost.
//
// Elements deleted by someone else from a table whose rules are intact
// (`nft flush map`) cannot be told from the generation or the rules, and
// listing every element takes seconds at 100k sessions. So after such a
// commit the watch also calls Elements, which looks up a sample of the
// elements the sessions need (Manager.CheckSample with
// ElementChecker.ElementsPresent): a flushed set lacks them all, a single
// deleted element is found only if sampled.
type TableWatch struct {
	dp       Dataplane
	interval time.Duration
	// Elements, when set, is called after a foreign commit that left the
	// rules intact. An error wrapping ErrElementsMissing is reported to
	// lost like a broken table; any other is retried at the next tick.
	Elements func(ctx context.Context) error
}

// ElementChecker is a Dataplane that can look elements up one by one,
// which costs microseconds where a listing costs seconds. The Linux
// dataplane is one.
type ElementChecker interface {
	// ElementsPresent looks up, in every set that legs put elements in, a
	// few of those elements (ElementProbesPerSet), and returns an error
	// wrapping ErrElementsMissing naming the first set that lacks one.
	ElementsPresent(ctx context.Context, legs []Leg) error
}

// ElementProbesPerSet is how many of the elements legs put in a set
// ElementsPresent looks up.
const ElementProbesPerSet = 8

// ErrElementsMissing: the table lacks elements its legs need.
var ErrElementsMissing = errors.New("elements of the relay's sessions are missing")

// NewTableWatch returns a watch over dp polling every interval (zero:
// DefaultWatchInterval).
func NewTableWatch(dp Dataplane, interval time.Duration) *TableWatch {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	return &TableWatch{dp: dp, interval: interval}
}

// Run polls until ctx is done and calls lost with the reason whenever the
// table is found broken; lost is expected to reinstall it (a failure is
// retried at the next tick, as the table is still broken then). Reading
// errors are retried too. Run returns nil on cancel, or at once when the
// dataplane cannot check its table.
func (w *TableWatch) Run(ctx context.Context, lost func(ctx context.Context, why error)) error {
	tc, ok := w.dp.(TableChecker)
	if !ok {
		return nil
	}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	broken := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		g, err := w.dp.Generation(ctx)
		if err != nil || (g.Own && !broken) {
			continue
		}
		if err := tc.TableIntact(ctx); err != nil {
			broken = true
			lost(ctx, err)
			continue
		}
		if w.Elements != nil {
			if err := w.Elements(ctx); err != nil {
				broken = true // look again at the next tick
				if errors.Is(err, ErrElementsMissing) {
					lost(ctx, err)
				}
				continue
			}
		}
		broken = false
	}
}
