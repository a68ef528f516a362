package relay

import (
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// tempSuffix names the sets a migration fills while the rules still look
// up the old ones.
const tempSuffix = "_resize"

// migrateChunk bounds the elements one transaction of a migration adds, so
// that a batch stays well inside the socket's buffer (~40 bytes an element).
const migrateChunk = 50000

// migrate gives the table's sets the sizes sizeSets chose, when the kernel
// holds them with other sizes (made by a daemon that gave none, or for
// other gates) or holds what a migration cut short left. The kernel
// refuses a set re-added with another size and nftables cannot rename a
// set, so the elements move twice: to new sets under temporary names, then
// back to new sets under the usual names. Each move fills the new sets
// while the rules still look up the old ones, then swaps the rules to the
// new sets and deletes the old ones in one transaction: a packet sees
// either table whole, and established flows never look the sets up (their
// NAT and mark live in conntrack). It must run before requests (Setup,
// with d.mu held): elements are copied as they are listed.
func (d *nftDataplane) migrate(gates []Gate) error {
	byName, err := d.setsByName()
	if err != nil || !d.needsMigration(byName) {
		return err
	}
	inUse, err := d.lookedUp()
	if err != nil {
		return err
	}
	if !inUse[d.obj.lock.Name+tempSuffix] { // the rules still use the usual names
		if err := d.move(gates, byName, "", tempSuffix); err != nil {
			return fmt.Errorf("move sets to temporary names: %w", err)
		}
		if byName, err = d.setsByName(); err != nil {
			return err
		}
	}
	if err := d.move(gates, byName, tempSuffix, ""); err != nil {
		return fmt.Errorf("move sets back to their names: %w", err)
	}
	return nil
}

// setsByName lists the table's sets; none when there is no table yet.
func (d *nftDataplane) setsByName() (map[string]*nftables.Set, error) {
	// GetSets formats the kernel's ENOENT away: ask for the table first.
	tables, err := d.nft.ListTablesOfFamily(d.obj.table.Family)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == d.obj.table.Name }) {
		return nil, nil
	}
	sets, err := d.nft.GetSets(d.obj.table)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	byName := make(map[string]*nftables.Set, len(sets))
	for _, s := range sets {
		byName[s.Name] = s
	}
	return byName, nil
}

// needsMigration reports whether a set of the table has another size than
// wanted, or a migration left sets under temporary names.
func (d *nftDataplane) needsMigration(byName map[string]*nftables.Set) bool {
	for _, s := range d.obj.sets() {
		if h := byName[s.Name]; h != nil && h.Size != s.Size {
			return true
		}
		if byName[s.Name+tempSuffix] != nil {
			return true
		}
	}
	return false
}

// lookedUp returns the names of the sets the table's rules look up.
func (d *nftDataplane) lookedUp() (map[string]bool, error) {
	names := map[string]bool{}
	for _, c := range d.obj.chains() {
		rules, err := d.nft.GetRules(d.obj.table, c)
		if errors.Is(err, errNoEntry) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", c.Name, err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if l, ok := e.(*expr.Lookup); ok {
					names[l.SetName] = true
				}
			}
		}
	}
	return names, nil
}

// move copies the elements of the sets named with suffix from into new
// sized sets named with suffix to, then swaps the rules to the new sets
// and deletes the old ones in one transaction.
func (d *nftDataplane) move(gates []Gate, byName map[string]*nftables.Set, from, to string) error {
	want := d.obj.sets()
	els := make([][]nftables.SetElement, len(want))
	for i, s := range want {
		if src := byName[s.Name+from]; src != nil {
			var err error
			if els[i], err = d.elements(src); err != nil {
				return err
			}
		}
	}
	if err := d.dropSets(byName, to); err != nil {
		return err
	}
	if err := d.fill(want, els, to); err != nil {
		return err
	}
	return d.swap(gates, byName, from, to)
}

// dropSets deletes what a migration cut short left under the names with
// suffix sfx; the rules do not look them up.
func (d *nftDataplane) dropSets(byName map[string]*nftables.Set, sfx string) error {
	stale := false
	for _, s := range d.obj.sets() {
		if old := byName[s.Name+sfx]; old != nil {
			d.nft.DelSet(old)
			stale = true
		}
	}
	if !stale {
		return nil
	}
	if err := d.flush(); err != nil {
		return fmt.Errorf("delete sets left by an earlier migration: %w", err)
	}
	return nil
}

// fill creates the sets of want under names with suffix sfx, each sized to
// hold at least its elements els, and adds those, in as many transactions
// as migrateChunk asks.
func (d *nftDataplane) fill(want []*nftables.Set, els [][]nftables.SetElement, sfx string) error {
	pending := 0
	for i, s := range want {
		t := *s
		t.ID, t.Name, t.Size = 0, s.Name+sfx, max(s.Size, setSize(len(els[i])))
		if err := d.nft.AddSet(&t, nil); err != nil {
			return fmt.Errorf("set %s: %w", t.Name, err)
		}
		for rest := els[i]; len(rest) > 0; {
			n := min(len(rest), d.obj.maxElementsPerSetMsg)
			if err := d.nft.SetAddElements(&t, rest[:n]); err != nil {
				return fmt.Errorf("set %s: %w", t.Name, err)
			}
			rest, pending = rest[n:], pending+n
			if pending >= migrateChunk {
				if err := d.flush(); err != nil {
					return fmt.Errorf("fill set %s: %w", t.Name, err)
				}
				pending = 0
			}
		}
	}
	if err := d.flush(); err != nil {
		return fmt.Errorf("create sized sets: %w", err)
	}
	return nil
}

// swap replaces the rules with ones that look up the sets named with
// suffix to, and deletes those named with suffix from, in one transaction.
func (d *nftDataplane) swap(gates []Gate, byName map[string]*nftables.Set, from, to string) error {
	rules := d.obj.rulesNamed(gates, to)
	stamp := fingerprint(rules)
	for _, c := range d.obj.chains() {
		d.nft.AddChain(c)
		d.nft.FlushChain(c)
	}
	for _, r := range rules {
		r.UserData = stamp
		d.nft.AddRule(r)
	}
	for _, s := range d.obj.sets() {
		if old := byName[s.Name+from]; old != nil {
			d.nft.DelSet(old)
		}
	}
	if err := d.flush(); err != nil {
		return fmt.Errorf("swap rules to the new sets: %w", err)
	}
	return nil
}

// rulesNamed is rules(gates) looking up the sets named with suffix sfx.
func (o *objects) rulesNamed(gates []Gate, sfx string) []*nftables.Rule {
	sets := o.sets()
	for _, s := range sets {
		s.Name += sfx
	}
	defer func() {
		for _, s := range sets {
			s.Name = s.Name[:len(s.Name)-len(sfx)]
		}
	}()
	return o.rules(gates)
}

// chains returns the table's base chains.
func (o *objects) chains() []*nftables.Chain { return []*nftables.Chain{o.raw, o.pre, o.post} }
