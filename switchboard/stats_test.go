package switchboard

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

func TestStatsCountSessionsByStateAndFreePortPairs(t *testing.T) {
	h := newHarness(t, "")
	h.alloc(t, AllocRequest{Ringing: true})
	h.alloc(t, AllocRequest{})
	got := h.m.Stats()
	want := []BoardStats{{Name: "edge", Ringing: 1, Active: 1, FreeA: 0, FreeB: 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Stats() = %v, want %v", got, want)
	}
}

// A restart that installs many legs (here into an empty kernel) says so
// when it begins and when it is done, so that an operator watching the
// log of a slow start sees it working.
func TestARestartThatRepairsManyLegsLogsItsProgress(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`state-dir = %q
[[switchboard]]
name = "edge"
gate-a = { address = "192.0.2.1", ports = "20000-39999" }
gate-b = { address = "10.0.0.1", ports = "20000-39999" }
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := NewManager(cfg, relaytest.NewMemory(), Options{})
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const sessions = applyChunk/legsPerSession + 10
	for i := range sessions {
		if _, err := first.Alloc(ctx, AllocRequest{Switchboard: "edge"}); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	first.Close()
	var log bytes.Buffer
	second := NewManager(cfg, relaytest.NewMemory(), Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	legs := sessions * legsPerSession
	for _, want := range []string{
		fmt.Sprintf(`msg="restoring: listing the kernel table" sessions=%d`, sessions),
		fmt.Sprintf(`msg="restoring: repairing the kernel table" legs=%d`, legs),
		fmt.Sprintf(`msg="restoring: kernel table repaired" legs=%d of=%d`, legs, legs),
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("restart log lacks %q:\n%s", want, log.String())
		}
	}
}
