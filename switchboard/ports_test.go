package switchboard

import "testing"

func TestPortsGoRoundTheRangeInEvenPairs(t *testing.T) {
	t.Parallel()
	p := newPorts(PortRange{30001, 30008}) // pairs 30002, 30004, 30006
	var got []uint16
	for range 3 {
		port, ok := p.take()
		if !ok {
			t.Fatal("ran out early")
		}
		got = append(got, port)
	}
	if got[0] != 30002 || got[1] != 30004 || got[2] != 30006 {
		t.Fatalf("took %v, want [30002 30004 30006]", got)
	}
	if _, ok := p.take(); ok {
		t.Fatal("took a fourth pair from three")
	}
	p.release(30002)
	p.release(30002) // releasing twice is harmless
	if port, _ := p.take(); port != 30002 {
		t.Fatalf("after release took %d, want 30002", port)
	}
	p.release(30004)
	p.release(30006)
	if port, _ := p.take(); port != 30004 {
		t.Errorf("round robin: took %d, want 30004 (after the last taken)", port)
	}
}

func TestClaimRefusesUsedAndForeignPorts(t *testing.T) {
	t.Parallel()
	p := newPorts(PortRange{30000, 30009})
	if err := p.claim(30004); err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint16{30004, 30005, 29998, 30010} {
		if err := p.claim(port); err == nil {
			t.Errorf("claim(%d) succeeded", port)
		}
	}
	if p.free != 4 {
		t.Errorf("%d free pairs, want 4", p.free)
	}
}
