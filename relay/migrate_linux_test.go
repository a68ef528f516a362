//go:build linux && integration

package relay

import (
	"context"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/nftables"
)

// setupUnsized builds the table as daemons before sized sets did: the
// same sets without a size (the kernel's rhashtable), the same rules.
func setupUnsized(t *testing.T, fd int, gates []Gate) {
	t.Helper()
	dp, err := Open(Options{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	d := dp.(*nftDataplane)
	o := d.obj
	d.nft.AddTable(o.table)
	for _, s := range o.sets() {
		if !s.Dynamic {
			s.Size = 0 // the learned maps had theirs
		}
		if err := d.nft.AddSet(s, nil); err != nil {
			t.Fatal(err)
		}
	}
	rules := o.rules(gates)
	for _, c := range o.chains() {
		d.nft.AddChain(c)
	}
	for _, r := range rules {
		d.nft.AddRule(r)
	}
	if err := d.flush(); err != nil {
		t.Fatal(err)
	}
}

func migrationLegs() []Leg {
	return []Leg{
		{Mark: Mark(4), Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000"), Lock: ap("192.0.2.10:4000")},
		{Mark: Mark(5), Gate: ap("192.0.2.1:30001"), Source: ap("10.0.0.1:30001")},
		{Mark: Mark(8), Gate: ap("[2001:db8:a::1]:30002"), Peer: ap("[2001:db8:b::10]:6000"), Source: ap("[2001:db8:b::1]:30002"), Lock: ap("[2001:db8:a::10]:7000")},
	}
}

// setSizes reads each set's size from nft list table (0: none).
func setSizes(t *testing.T, ns string) map[string]string {
	t.Helper()
	listing := nft(t, ns, "list", "table", "inet", TableName)
	out := map[string]string{}
	for _, block := range regexp.MustCompile(`(?m)^\t(?:set|map) `).Split(listing, -1)[1:] {
		name := strings.Fields(block)[0]
		out[name] = "none"
		if m := regexp.MustCompile(`\bsize (\d+)`).FindStringSubmatch(block); m != nil {
			out[name] = m[1]
		}
	}
	return out
}

// setHandles reads each set's handle from nft -a list table: a set made
// anew (whose kernel backend is chosen anew) has another.
func setHandles(t *testing.T, ns string) map[string]string {
	t.Helper()
	listing := nft(t, ns, "-a", "list", "table", "inet", TableName)
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\t(?:set|map) (\S+) \{ # handle (\d+)`).FindAllStringSubmatch(listing, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// wantSizes are the sizes of every set: v4 and v6 those of one element
// per leg of the family, learnfrom twice that, the shared sets lock's.
func wantSizes(v4, v6, learnfrom4, learnfrom6, lock string) map[string]string {
	out := map[string]string{"lock": lock, "guard": lock, "learn": lock,
		"learnfrom4": learnfrom4, "learnfrom6": learnfrom6, "learned4": "16777215", "learned6": "16777215"}
	for _, base := range []string{"leg", "dnat", "snat", "allow"} {
		out[base+"4"], out[base+"6"] = v4, v6
	}
	return out
}

// unsized are the sizes of the old layout: none, but for the learned maps.
func unsized() map[string]string {
	out := wantSizes("none", "none", "none", "none", "none")
	out["learned4"], out["learned6"] = "16777215", "16777215"
	return out
}

func checkLegs(t *testing.T, d Dataplane, want []Leg) {
	t.Helper()
	got, err := d.Legs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})); diff != "" {
		t.Errorf("legs (-want +got):\n%s", diff)
	}
}

func TestKernelSetupMigratesUnsizedSetsKeepingLegs(t *testing.T) {
	ns, fd := kernelNS(t)
	ctx := context.Background()
	setupUnsized(t, fd, testGates())
	if got := setSizes(t, ns); !cmp.Equal(got, unsized()) {
		t.Fatalf("the old layout has sizes %v", got)
	}
	// The kernel takes a set re-added with a size as an update of the size
	// alone: the set keeps its rhashtable. Only a new set gets the hash.
	old := setHandles(t, ns)
	d := openKernel(t, fd) // Setup migrates
	if diff := cmp.Diff(wantSizes("32768", "16384", "65536", "32768", "65536"), setSizes(t, ns)); diff != "" {
		t.Errorf("set sizes after a migration (-want +got):\n%s", diff)
	}
	for name, h := range setHandles(t, ns) {
		if old[name] == h {
			t.Errorf("set %s keeps its handle %s: not made anew", name, h)
		}
	}
	checkLegs(t, d, nil)
	legs := migrationLegs()
	if _, err := d.Apply(ctx, Batch{Add: legs}); err != nil {
		t.Fatal(err)
	}

	// A restart with more gate ports moves the legs to bigger sets.
	gates := append(testGates(), Gate{Addr: netip.MustParseAddr("192.0.2.2"), First: 1024, Last: 65535, Zone: ZoneA})
	d2, err := Open(Options{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Setup(ctx, gates); err != nil {
		t.Fatal(err)
	}
	// v4: 20,000 + 64,512 ports; v6: 10,000; lock: both.
	if diff := cmp.Diff(wantSizes("131072", "16384", "262144", "32768", "131072"), setSizes(t, ns)); diff != "" {
		t.Errorf("set sizes after a migration (-want +got):\n%s", diff)
	}
	checkLegs(t, d2, legs)
	// The rules are the usual ones: one more Setup changes nothing.
	before, _ := d2.Generation(ctx)
	if err := d2.Setup(ctx, gates); err != nil {
		t.Fatal(err)
	}
	if after, _ := d2.Generation(ctx); after.ID != before.ID {
		t.Errorf("Setup after a migration committed again (generation %d -> %d)", before.ID, after.ID)
	}
}

func TestKernelMigrationCutShortIsFinishedByTheNextSetup(t *testing.T) {
	ns, fd := kernelNS(t)
	ctx := context.Background()
	setupUnsized(t, fd, testGates())
	legs := migrationLegs()
	old, err := Open(Options{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Apply(ctx, Batch{Add: legs}); err != nil {
		t.Fatal(err)
	}
	// A daemon dies after the first move: the rules look up the sets under
	// temporary names, and the usual names hold a half-filled leftover.
	d := old.(*nftDataplane)
	d.obj.sizeSets(testGates())
	byName, err := d.setsByName()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.move(testGates(), byName, "", tempSuffix); err != nil {
		t.Fatal(err)
	}
	leftover := *d.obj.v4.dnat
	leftover.ID = 0
	if err := d.nft.AddSet(&leftover, []nftables.SetElement{{Key: markBytes(Mark(77)), Val: endpointBytes(ap("10.0.0.77:7"))}}); err != nil {
		t.Fatal(err)
	}
	if err := d.flush(); err != nil {
		t.Fatal(err)
	}
	if listing := nft(t, ns, "list", "chain", "inet", TableName, "pre"); !strings.Contains(listing, "@leg4"+tempSuffix) {
		t.Fatalf("the rules do not use the temporary sets:\n%s", listing)
	}

	next := openKernel(t, fd)
	if diff := cmp.Diff(wantSizes("32768", "16384", "65536", "32768", "65536"), setSizes(t, ns)); diff != "" {
		t.Errorf("set sizes after the next Setup (-want +got):\n%s", diff)
	}
	checkLegs(t, next, legs)
	if listing := nft(t, ns, "list", "chain", "inet", TableName, "pre"); strings.Contains(listing, tempSuffix) {
		t.Errorf("the rules still use temporary sets:\n%s", listing)
	}
}
