package relay

import (
	"context"
	"errors"
	"fmt"
)

var _ TableChecker = (*nftDataplane)(nil)

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
