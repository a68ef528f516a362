// Package gcfloor keeps Go's garbage collector from running while the
// heap is small. The collector runs when the heap has grown by GOGC
// percent over what the last collection left live: with a few MiB live,
// a daemon that makes ~30 KiB of garbage per call collected dozens of
// times a second, and each collection's marking took one of the machine's
// two cores, which made the slowest calls slower (nftrtpbench). Here the
// percent is raised after every collection so that the next one comes
// when the heap reaches a floor (a few tens of MiB) or grows by the base
// percent, whichever is later: with many sessions live the base percent
// rules and the heap's size is what it was.
//
// Written by hand: Go offers a ceiling (GOMEMLIMIT), not a floor, and the
// tuners that offer one come with more than these few lines.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// maxPercent bounds the percent set: with next to nothing live, the floor
// alone would ask for an unbounded one.
const maxPercent = 10000

// PercentFor returns the GC percent that makes the next collection come
// when the heap reaches floor bytes, given live bytes left by the last
// one, and never less than base.
func PercentFor(live, floor uint64, base int) int {
	if live == 0 || live >= floor {
		return base
	}
	p := (floor - live) * 100 / live
	return max(base, int(min(p, maxPercent)))
}

// Start sets the GC percent to PercentFor the live heap after every
// collection, until stop is called (then base is set again).
func Start(floor uint64, base int) (stop func()) {
	var (
		mu      sync.Mutex // orders a tuning after a collection and stop
		stopped bool
		last    = base
		sample  = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	)
	debug.SetGCPercent(base)
	var tune func()
	tune = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		metrics.Read(sample)
		var live uint64
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = sample[0].Value.Uint64()
		}
		if p := PercentFor(live, floor, base); p != last {
			debug.SetGCPercent(p)
			last = p
		}
		arm(tune)
	}
	tune()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		debug.SetGCPercent(base)
	}
}

// arm runs fn once the next collection has run: when it frees an object
// that only a finalizer watches.
func arm(fn func()) {
	s := new(sentinel)
	runtime.SetFinalizer(s, func(*sentinel) { fn() })
}

// sentinel is big enough to be a heap object of its own (zero-sized and
// tiny objects may share an allocation, whose finalizer may never run).
type sentinel struct{ _ [16]byte }
