//go:build linux && integration

package relay

import (
	"context"
	"testing"
)

// TableIntact is what the table watch looks at after a foreign commit: it
// must hold while only another table changes and fail once the relay's
// table is flushed away or a chain's rules are changed.
func TestKernelTableIntact(t *testing.T) {
	ns, fd := kernelNS(t)
	d := openKernel(t, fd).(*nftDataplane)
	ctx := context.Background()
	if err := d.TableIntact(ctx); err != nil {
		t.Fatalf("after Setup: %v", err)
	}
	nft(t, ns, "add", "table", "ip", "other")
	if err := d.TableIntact(ctx); err != nil {
		t.Fatalf("after another table was added: %v", err)
	}
	nft(t, ns, "add", "rule", "inet", TableName, "post", "counter")
	if err := d.TableIntact(ctx); err == nil {
		t.Error("after a rule was added to chain post: want an error")
	}
	nft(t, ns, "flush", "ruleset")
	if err := d.TableIntact(ctx); err == nil {
		t.Error("after flush ruleset: want an error")
	}
	if err := d.Setup(ctx, testGates()); err != nil {
		t.Fatal(err)
	}
	if err := d.TableIntact(ctx); err != nil {
		t.Errorf("after Setup again: %v", err)
	}
}
