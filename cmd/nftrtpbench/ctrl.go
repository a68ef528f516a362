package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// callOp sets up and tears down one call, for load client w, its i-th
// call, and returns how long each of its requests took.
type callOp func(ctx context.Context, w, i int) ([]time.Duration, error)

// workOp is the i-th unit of work of a fill, done by worker w.
type workOp func(ctx context.Context, w, i int) error

// ctrlResult is a control-plane load run.
type ctrlResult struct {
	calls int
	dur   time.Duration
	lat   []time.Duration   // per call (all its requests), sorted
	steps [][]time.Duration // per request of a call, sorted
	errs  int
	err   error // the first error
	// serverCPU and clientCPU are the seconds of CPU the server process
	// and the load clients (this process) spent during the run.
	serverCPU, clientCPU float64
}

func (r ctrlResult) rate() float64 { return float64(r.calls) / r.dur.Seconds() }

// cpuPerCall is cpu seconds spread over the run's calls.
func (r ctrlResult) cpuPerCall(cpu float64) time.Duration {
	if r.calls == 0 {
		return 0
	}
	return time.Duration(cpu / float64(r.calls) * float64(time.Second))
}

// runControl runs clients concurrent load clients, each doing op after op
// for dur.
func runControl(ctx context.Context, clients int, dur time.Duration, op callOp) ctrlResult {
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var r ctrlResult
	var wg sync.WaitGroup
	begin := time.Now()
	deadline := begin.Add(dur)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine ctrlResult
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t := time.Now()
				steps, err := op(ctx, w, i)
				if err != nil {
					mine.errs++
					mine.err = cmpErr(mine.err, err)
					continue
				}
				mine.lat = append(mine.lat, time.Since(t))
				mine.addSteps(steps)
			}
			mu.Lock()
			r.merge(mine)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.dur, r.calls = time.Since(begin), len(r.lat)
	slices.Sort(r.lat)
	for _, s := range r.steps {
		slices.Sort(s)
	}
	return r
}

func (r *ctrlResult) addSteps(steps []time.Duration) {
	for k, d := range steps {
		if k == len(r.steps) {
			r.steps = append(r.steps, nil)
		}
		r.steps[k] = append(r.steps[k], d)
	}
}

func (r *ctrlResult) merge(o ctrlResult) {
	r.lat = append(r.lat, o.lat...)
	for k, s := range o.steps {
		if k == len(r.steps) {
			r.steps = append(r.steps, nil)
		}
		r.steps[k] = append(r.steps[k], s...)
	}
	r.errs += o.errs
	r.err = cmpErr(r.err, o.err)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, or 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.9999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// fill runs op for i = 0..n-1 over clients concurrent workers and stops at
// the first error.
func fill(ctx context.Context, clients, n int, op workOp) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := op(ctx, w, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
