package relay

import (
	"errors"
	"testing"
)

func TestGenerationCounterTellsOwnReadingsAndPredicts(t *testing.T) {
	var c GenerationCounter
	at := func(id uint32) Generation { return Generation{Boot: "b", NetNS: 7, ID: id} }
	if g := c.Read(at(10)); g.Own {
		t.Error("the first reading is own; want not (nothing is known before it)")
	}
	if _, ok := c.Expected(); ok {
		t.Error("Expected after a reading that was not own: want unknown")
	}
	c.Committed(nil)
	c.Committed(nil)
	if g := c.Read(at(12)); !g.Own {
		t.Error("two own commits, generation +2: want own")
	}
	c.Committed(nil)
	if g, ok := c.Expected(); !ok || g.ID != 13 || g.Boot != "b" || g.NetNS != 7 {
		t.Errorf("Expected = %+v, %v; want id 13 of the same boot and namespace", g, ok)
	}
	if g := c.Read(at(14)); g.Own {
		t.Error("one own commit, generation +2 (someone else committed): want not own")
	}
	c.Read(at(14))
	c.Committed(errTest)
	if _, ok := c.Expected(); ok {
		t.Error("Expected after a failed transaction: want unknown")
	}
	if g := c.Read(at(15)); g.Own {
		t.Error("a reading after a failed transaction is own; want not")
	}
	c.Read(Generation{Boot: "b", NetNS: 8, ID: 15})
	if g := c.Read(Generation{Boot: "b", NetNS: 9, ID: 15}); g.Own {
		t.Error("the same id in another namespace is own; want not")
	}
}

var errTest = errors.New("failed")
