package relay

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// sizeSets gives every set of the table its size hint for gates (see
// setSize): each family's sets hold at most one element per port of that
// family's gates (learnfrom MaxAllowed), the shared mark sets one per port
// of any gate. The dynamic learned maps keep their own size: the kernel
// gives a set that rules add to its rhashtable whatever the size.
func (o *objects) sizeSets(gates []Gate) {
	total := 0
	for _, f := range o.families {
		n := f.ports(o, gates)
		total += n
		for _, s := range []*nftables.Set{f.leg, f.dnat, f.snat, f.allow} {
			s.Size = setSize(n)
		}
		f.learnfrom.Size = setSize(MaxAllowed * n)
	}
	for _, s := range []*nftables.Set{o.lock, o.guard, o.learn} {
		s.Size = setSize(total)
	}
}

// ports counts the ports of the gates of family f.
func (f *family) ports(o *objects, gates []Gate) int {
	n := 0
	for _, g := range gates {
		if o.familyOf(g.Addr) == f {
			n += int(g.Last) - int(g.First) + 1
		}
	}
	return n
}

// explainFull names the cause of the kernel's ENFILE ("too many open files
// in system"), its answer to an element beyond a set's size.
func explainFull(err error) error {
	if !errors.Is(err, unix.ENFILE) {
		return err
	}
	return fmt.Errorf("%w: a set is full (its size allows one element per port of the gates given to Setup)", err)
}
