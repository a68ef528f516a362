//go:build linux && integration

package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// kernelNS creates a fresh network namespace for one test and returns its
// name and an open fd. It skips the test without root.
func kernelNS(t *testing.T) (string, int) { return kernelNSB(t) }

// kernelNSB is kernelNS for tests and benchmarks.
func kernelNSB(t testing.TB) (string, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create a network namespace (run as root or use make test as root)")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "nrp-relay-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("kernel test: cannot create a network namespace: %v: %s", err, out)
	}
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	return name, int(f.Fd())
}

// inNS runs a command (nft, conntrack, sysctl: the independent oracles)
// inside the namespace ns and returns its output; a failure fails the test.
func inNS(t *testing.T, ns string, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

func nft(t *testing.T, ns string, args ...string) string { return inNS(t, ns, "nft", args...) }

func testGates() []Gate {
	return []Gate{
		{Addr: netip.MustParseAddr("192.0.2.1"), First: 30000, Last: 39999, Zone: ZoneA},
		{Addr: netip.MustParseAddr("10.0.0.1"), First: 30000, Last: 39999, Zone: ZoneB},
		{Addr: netip.MustParseAddr("2001:db8:a::1"), First: 30000, Last: 39999, Zone: ZoneA},
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// legCmp compares legs, whose addresses cmp cannot look into.
var legCmp = cmp.Options{cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}

// openKernel opens a dataplane in the namespace fd, closed when the test
// ends, and sets up its table for testGates (which also switches conntrack
// on in the namespace: it is on once a ct rule exists).
func openKernel(tb testing.TB, fd int) Dataplane {
	tb.Helper()
	d, err := Open(Options{NetNS: fd})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	if err := d.Setup(context.Background(), testGates()); err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestKernelLegsRoundTripAndListable(t *testing.T) {
	ns, fd := kernelNS(t)
	ctx := context.Background()
	d := openKernel(t, fd)
	legs := []Leg{
		{Mark: Mark(4), Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000"), Lock: ap("192.0.2.10:4000")},
		{Mark: Mark(5), Gate: ap("192.0.2.1:30001"), Source: ap("10.0.0.1:30001")},
		{Mark: Mark(8), Gate: ap("[2001:db8:a::1]:30002"), Peer: ap("[2001:db8:b::10]:6000"), Source: ap("[2001:db8:b::1]:30002"), Lock: ap("[2001:db8:a::10]:7000")},
	}
	if _, err := d.Apply(ctx, Batch{Add: legs}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Legs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(legs, got, legCmp); diff != "" {
		t.Errorf("legs read back (-want +got):\n%s", diff)
	}
	listing := nft(t, ns, "list", "table", "inet", TableName)
	// google/nftables v0.3.0 cannot record the byte order of map data, so nft
	// prints the (host-endian) marks of leg4 byte-swapped; keys print right.
	for _, want := range []string{"192.0.2.1 . 30000 : 0x04000052", "0x52000004 : 10.0.0.10 . 5000", "2001:db8:b::10 . 6000"} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft list table lacks %q:\n%s", want, listing)
		}
	}
	// Setup again (a restart) keeps the elements.
	if err := d.Setup(ctx, testGates()); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Legs(ctx); len(got) != len(legs) {
		t.Errorf("after a second Setup: %d legs, want %d", len(got), len(legs))
	}
	// Removing a leg that is not installed fails the whole batch.
	bad := Batch{Remove: []Leg{legs[0], {Mark: Mark(99), Gate: ap("192.0.2.1:30098"), Source: ap("10.0.0.1:30098")}}}
	if _, err := d.Apply(ctx, bad); err == nil {
		t.Fatal("removing a missing leg succeeded")
	}
	if got, _ := d.Legs(ctx); len(got) != len(legs) {
		t.Errorf("after a failed batch: %d legs, want %d (all or nothing)", len(got), len(legs))
	}
	// Adding a gate port that is taken fails in the batch's last message,
	// the one acknowledged; the next batch works.
	taken := Batch{Add: []Leg{{Mark: Mark(98), Gate: legs[0].Gate, Source: legs[0].Source}}}
	if _, err := d.Apply(ctx, taken); err == nil || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("adding a taken gate port: %v, want EEXIST", err)
	}
	if _, err := d.Apply(ctx, Batch{Remove: legs[:1]}); err != nil {
		t.Fatalf("a batch after two failed ones: %v", err)
	}
	if _, err := d.Apply(ctx, Batch{Add: legs[:1]}); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Legs(ctx); len(got) != len(legs) {
		t.Errorf("after remove and add: %d legs, want %d", len(got), len(legs))
	}
}

func TestKernelLargeBatchStoresEveryElement(t *testing.T) {
	_, fd := kernelNS(t)
	ctx := context.Background()
	d := openKernel(t, fd)
	// DESIGN: one SetAddElements call over ~1,365 elements silently stores fewer.
	var legs []Leg
	for i := 0; i < 5000; i++ {
		p := uint16(30000 + i)
		legs = append(legs, Leg{Mark: Mark(uint32(i + 1)), Gate: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), p),
			Peer: ap("10.0.0.10:5000"), Source: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), p)})
	}
	if _, err := d.Apply(ctx, Batch{Add: legs}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Legs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(legs) {
		t.Fatalf("stored %d legs of %d", len(got), len(legs))
	}
	if _, err := d.Apply(ctx, Batch{Remove: legs}); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Legs(ctx); len(got) != 0 {
		t.Fatalf("%d legs left after removing all", len(got))
	}
}

// A stranger's flow is deleted by its tuple and zone; the leg's other flows
// stay. Entries are made with the conntrack CLI, the independent oracle.
// Flows report how long they have been idle, from the namespace's UDP
// timeout (set to 100 s here) less what remains of theirs (60 s).
func TestKernelDeleteOneFlowByTuple(t *testing.T) {
	ns, fd := kernelNS(t)
	ctx := context.Background()
	inNS(t, ns, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=100")
	d := openKernel(t, fd)
	insert := func(src string, sport string) {
		t.Helper()
		inNS(t, ns, "conntrack", "-I", "-p", "udp", "-s", src, "-d", "192.0.2.1",
			"--sport", sport, "--dport", "30000", "--timeout", "60", "--mark", "0x52000004", "--zone", "1")
	}
	insert("198.51.100.7", "61000")
	insert("203.0.113.9", "1234")
	flows, err := d.Flows(ctx, Mark(4))
	if err != nil || len(flows) != 2 {
		t.Fatalf("Flows: %v, %v", flows, err)
	}
	for _, f := range flows {
		if f.Idle < 39*time.Second || f.Idle > 41*time.Second {
			t.Errorf("flow from %s idle for %s, want 40 s (100 s UDP timeout, 60 s left)", f.Src, f.Idle)
		}
	}
	stranger := Flow{Mark: Mark(4), Zone: ZoneA, Src: ap("203.0.113.9:1234"), Dst: ap("192.0.2.1:30000")}
	if _, err := d.Apply(ctx, Batch{Delete: []Flow{stranger}}); err != nil {
		t.Fatal(err)
	}
	out := inNS(t, ns, "conntrack", "-L", "-p", "udp")
	if strings.Contains(out, "203.0.113.9") || !strings.Contains(out, "198.51.100.7") {
		t.Errorf("after deleting the stranger's flow, conntrack -L:\n%s", out)
	}
	// Deleting it again is not an error (it may have expired meanwhile).
	if _, err := d.Apply(ctx, Batch{Delete: []Flow{stranger}}); err != nil {
		t.Errorf("deleting a gone flow: %v", err)
	}
}

// Lookup reads flows by tuple and zone with the counters and idle time the
// kernel holds now, and leaves out a flow it does not hold; Flows of a
// session's four marks (one dump with a mask) finds the flows of each and
// of no other mark. Entries are made with the conntrack CLI, the oracle.
func TestKernelLookupReadsFlowsByTuple(t *testing.T) {
	ns, fd := kernelNS(t)
	ctx := context.Background()
	inNS(t, ns, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=100")
	d := openKernel(t, fd)
	insert := func(src, sport, dport, mark string) {
		t.Helper()
		inNS(t, ns, "conntrack", "-I", "-p", "udp", "-s", src, "-d", "192.0.2.1",
			"--sport", sport, "--dport", dport, "--timeout", "60", "--mark", mark, "--zone", "1")
	}
	insert("198.51.100.7", "61000", "30000", "0x52000004")
	insert("198.51.100.7", "61001", "30001", "0x52000005")
	insert("203.0.113.9", "1234", "30002", "0x52000008") // another session's
	known := Flow{Mark: Mark(4), Zone: ZoneA, Src: ap("198.51.100.7:61000"), Dst: ap("192.0.2.1:30000")}
	gone := Flow{Mark: Mark(4), Zone: ZoneA, Src: ap("198.51.100.8:61000"), Dst: ap("192.0.2.1:30000")}
	got, err := d.Lookup(ctx, known, gone)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Src != known.Src || got[0].Dst != known.Dst || got[0].Mark != Mark(4) {
		t.Fatalf("Lookup = %+v, want only the flow from %s", got, known.Src)
	}
	if got[0].Idle < 39*time.Second || got[0].Idle > 41*time.Second {
		t.Errorf("looked-up flow idle for %s, want 40 s (100 s UDP timeout, 60 s left)", got[0].Idle)
	}
	flows, err := d.Flows(ctx, Mark(4), Mark(5), Mark(6), Mark(7))
	if err != nil {
		t.Fatal(err)
	}
	var marks []uint32
	for _, f := range flows {
		marks = append(marks, f.Mark)
	}
	sort.Slice(marks, func(i, j int) bool { return marks[i] < marks[j] })
	if want := []uint32{Mark(4), Mark(5)}; !slices.Equal(marks, want) {
		t.Errorf("Flows of one session's marks found marks %#x, want %#x", marks, want)
	}
}

// Setup leaves the table alone when its rules are already those of the
// same gates (a restart: replacing them costs the kernel a walk of every
// big map), and replaces them when the gates differ or a rule went
// missing. The generation id tells whether Setup committed; the nft CLI is
// the oracle for the rules.
func TestKernelSetupSkipsUnchangedRules(t *testing.T) {
	ns, fd := kernelNS(t)
	ctx := context.Background()
	openKernel(t, fd) // a first run installs the rules
	d, err := Open(Options{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	gen := func() uint32 {
		t.Helper()
		g, err := d.Generation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return g.ID
	}
	before := gen()
	if err := d.Setup(ctx, testGates()); err != nil {
		t.Fatal(err)
	}
	if after := gen(); after != before {
		t.Errorf("Setup with the same gates committed (generation %d -> %d), want no change", before, after)
	}

	other := testGates()
	other[0].Last--
	if err := d.Setup(ctx, other); err != nil {
		t.Fatal(err)
	}
	if after := gen(); after == before {
		t.Error("Setup with other gates did not commit")
	}
	want := fmt.Sprintf("udp dport %d-%d", other[0].First, other[0].Last)
	if listing := nft(t, ns, "list", "chain", "inet", TableName, "raw"); !strings.Contains(listing, want) {
		t.Errorf("raw chain lacks %q after Setup with other gates:\n%s", want, listing)
	}

	// Someone deletes a rule: the next Setup puts the rules back.
	out := nft(t, ns, "-a", "list", "chain", "inet", TableName, "post")
	i := strings.LastIndex(out, "# handle ")
	if i < 0 {
		t.Fatalf("no rule handle in:\n%s", out)
	}
	handle := strings.Fields(out[i+len("# handle "):])[0]
	nft(t, ns, "delete", "rule", "inet", TableName, "post", "handle", handle)
	if err := d.Setup(ctx, other); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(nft(t, ns, "list", "chain", "inet", TableName, "post"), "to ct mark map @snat"); n != 2 {
		t.Errorf("post chain has %d snat rules after Setup, want 2", n)
	}
}

// A learning leg's guard, learning sources and learned source round-trip
// through the kernel and nft lists them; removing the leg removes what the
// kernel learned for it, also when the caller does not know (the kernel
// learned it since: the transaction is retried with what the map holds),
// and putting a learned source over one the kernel took replaces it. Both
// ways of clearing are checked: destroying by key (Linux 6.3) and adding
// then deleting, as on older kernels.
func TestKernelLearningLegsAndLearnedSources(t *testing.T) {
	for _, destroy := range []bool{false, true} {
		t.Run(fmt.Sprintf("destroy=%v", destroy), func(t *testing.T) {
			if destroy && !kernelDestroysElements() {
				t.Skip("the kernel destroys no elements (Linux 6.3)")
			}
			testLearningLegs(t, destroy)
		})
	}
}

func testLearningLegs(t *testing.T, destroy bool) {
	ns, fd := kernelNS(t)
	ctx := context.Background()
	d := openKernel(t, fd)
	d.(*nftDataplane).obj.destroy = destroy
	learning := Leg{Mark: Mark(4), Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000"),
		Allowed: Allow(netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.10")), Guard: true, Learn: true}
	learned := Leg{Mark: Mark(8), Gate: ap("[2001:db8:a::1]:30002"), Source: ap("[2001:db8:b::1]:30002"),
		Lock: ap("[2001:db8:a::10]:7000"), Learned: ap("[2001:db8:a::10]:7000")}
	if _, err := d.Apply(ctx, Batch{Add: []Leg{learning, learned}}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Legs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Leg{learning, learned}, got, legCmp); diff != "" {
		t.Errorf("legs read back (-want +got):\n%s", diff)
	}
	listing := nft(t, ns, "list", "ruleset")
	for _, want := range []string{"0x52000004 . 192.0.2.10", "0x52000004 . 198.51.100.7", "0x52000008 : 2001:db8:a::10 . 7000",
		"add @learned4 { ct mark : ip saddr . udp sport }", "ct mark ^ 0x00000002 map @learned4", "flags dynamic"} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft list ruleset lacks %q:\n%s", want, listing)
		}
	}
	// The kernel learns for mark 4 behind the caller's back (as the rule
	// would); removing the leg believing nothing was learned still works.
	nft(t, ns, "add", "element", "inet", TableName, "learned4", "{ 0x52000004 : 192.0.2.10 . 4321 }")
	if _, err := d.Apply(ctx, Batch{Remove: []Leg{learning}}); err != nil {
		t.Fatalf("removing a leg whose learned source the caller never heard of: %v", err)
	}
	if l := nft(t, ns, "list", "map", "inet", TableName, "learned4"); strings.Contains(l, "4321") {
		t.Errorf("learned source left after its leg was removed:\n%s", l)
	}
	// A leg added with a learned source over one the kernel holds for its
	// mark (left from before) replaces it.
	nft(t, ns, "add", "element", "inet", TableName, "learned4", "{ 0x52000004 : 192.0.2.10 . 4321 }")
	learning.Learned, learning.Learn, learning.Guard = ap("192.0.2.10:4000"), false, false
	if _, err := d.Apply(ctx, Batch{Add: []Leg{learning}}); err != nil {
		t.Fatal(err)
	}
	if l := nft(t, ns, "list", "map", "inet", TableName, "learned4"); !strings.Contains(l, "192.0.2.10 . 4000") || strings.Contains(l, "4321") {
		t.Errorf("learned map after adding over a stale element:\n%s", l)
	}
	if _, err := d.Apply(ctx, Batch{Remove: []Leg{learning, learned}}); err != nil {
		t.Fatal(err)
	}
	if l := nft(t, ns, "list", "table", "inet", TableName); strings.Contains(l, "elements = {") {
		t.Errorf("elements left after removing every leg:\n%s", l)
	}
}
