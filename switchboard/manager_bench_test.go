package switchboard

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

// acceptAll is a dataplane that accepts every batch and keeps nothing, so
// that the Manager's own memory is measured, not the fake kernel's.
type acceptAll struct{ *relaytest.Memory }

func (acceptAll) Apply(context.Context, relay.Batch) (relay.Generation, error) {
	return relay.Generation{}, nil
}

// BenchmarkManagerHeapPerSession reports the live heap the Manager holds
// per session with 100k answered sessions (the daemon's RSS is about twice
// its live heap under Go's default GC target).
func BenchmarkManagerHeapPerSession(b *testing.B) {
	const n = 100000
	cfg := fourBoards(b)
	for b.Loop() {
		m := NewManager(cfg, acceptAll{relaytest.NewMemory()}, Options{})
		if err := m.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			r := AllocRequest{Switchboard: fmt.Sprintf("sb%d", i%4), A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")}
			if _, err := m.Alloc(context.Background(), r); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/session")
		runtime.KeepAlive(m)
		m.Close()
	}
}

// BenchmarkCompact measures a whole journal compaction with 50k sessions,
// as a start runs it. While serving, only its snapshot runs under the
// Manager's lock (compaction.go).
func BenchmarkCompact(b *testing.B) {
	const n = 50000
	cfg := fourBoards(b)
	m := NewManager(cfg, acceptAll{relaytest.NewMemory()}, Options{})
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for i := range n {
		r := AllocRequest{Switchboard: fmt.Sprintf("sb%d", i%4), A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")}
		if _, err := m.Alloc(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		m.mu.Lock()
		err := m.compact()
		m.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/session")
}

// fourBoards is a configuration of four switchboards "sb0".."sb3" with
// whole port ranges, for 100k sessions.
func fourBoards(b *testing.B) *Config {
	b.Helper()
	toml := fmt.Sprintf("state-dir = %q\n", b.TempDir())
	for i := range 4 {
		toml += fmt.Sprintf("[[switchboard]]\nname = \"sb%d\"\n"+
			"gate-a = { address = \"192.0.2.%d\", ports = \"1024-65535\" }\n"+
			"gate-b = { address = \"10.0.0.%d\", ports = \"1024-65535\" }\n", i, i+1, i+1)
	}
	cfg, err := ParseConfig([]byte(toml))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}
