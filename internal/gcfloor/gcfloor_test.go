package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, floor uint64
		base, want  int
	}{
		{8 * mib, 64 * mib, 75, 700},  // the next collection at 64 MiB
		{32 * mib, 64 * mib, 75, 100}, // likewise
		{40 * mib, 64 * mib, 75, 75},  // 40 MiB + 75% passes the floor
		{200 * mib, 64 * mib, 75, 75}, // above the floor: the base
		{0, 64 * mib, 75, 75},         // nothing read yet
		{1, 64 * mib, 75, maxPercent}, // next to nothing live: bounded
		{8 * mib, 64 * mib, 900, 900}, // never below the base
	} {
		if got := PercentFor(tc.live, tc.floor, tc.base); got != tc.want {
			t.Errorf("PercentFor(%d MiB live, %d MiB floor, %d) = %d, want %d",
				tc.live/mib, tc.floor/mib, tc.base, got, tc.want)
		}
	}
}

// After collections with little live, the percent in force is the one
// that puts the next collection at the floor; stopped, the base.
func TestStartFollowsEachCollection(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const floor, base = 256 << 20, 75
	stop := Start(floor, base)
	for range 3 {
		runtime.GC()
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/gogc:percent"}}
	var got, want int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		runtime.GC() // the finalizer runs after the collection, on its own goroutine
		time.Sleep(10 * time.Millisecond)
		metrics.Read(sample)
		got, want = int(sample[1].Value.Uint64()), PercentFor(sample[0].Value.Uint64(), floor, base)
		if want > base && got >= want*9/10 && got <= want*11/10 {
			break
		}
	}
	if want <= base || got < want*9/10 || got > want*11/10 {
		t.Fatalf("GOGC %d after collections with %d bytes live, want about %d", got, sample[0].Value.Uint64(), want)
	}
	stop()
	metrics.Read(sample)
	if got := sample[1].Value.Uint64(); got != base {
		t.Errorf("GOGC %d after stop, want the base %d", got, base)
	}
}
