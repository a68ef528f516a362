package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

var (
	_ TableChecker   = (*nftDataplane)(nil)
	_ ElementChecker = (*nftDataplane)(nil)
)

// errNoSetup is TableIntact before any Setup.
var errNoSetup = errors.New("no table set up yet")

// TableIntact reports whether the chains of the table hold exactly the
// rules of the last Setup, stamped with their fingerprint. Rules reference
// the sets, so a set cannot go while they stay (the kernel refuses with
// EBUSY): checking the rules covers the table, its chains and its sets.
func (d *nftDataplane) TableIntact(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gates == nil {
		return errNoSetup
	}
	rules := d.obj.rules(d.gates)
	if !d.rulesAre(rules, fingerprint(rules)) {
		return fmt.Errorf("table inet %s: its chains no longer hold the relay's rules", TableName)
	}
	return nil
}

// ElementsPresent looks up the first ElementProbesPerSet elements legs put
// in each set, one NFT_MSG_GETSETELEM request per set. The learned maps,
// which the kernel's rules fill, are not looked at.
func (d *nftDataplane) ElementsPresent(_ context.Context, legs []Leg) error {
	els := elements{}
	for _, l := range legs {
		els.add(d.obj, l, len(legs))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for s, list := range els {
		keys := make([]nftables.SetElement, 0, min(len(list), ElementProbesPerSet))
		for _, e := range list[:min(len(list), ElementProbesPerSet)] {
			keys = append(keys, nftables.SetElement{Key: e.Key})
		}
		if err := d.el.lookup(s, keys); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("table inet %s: set %s: %w", TableName, s.Name, ErrElementsMissing)
			}
			return opError("look up elements", fmt.Errorf("set %s: %w", s.Name, err))
		}
	}
	return nil
}
