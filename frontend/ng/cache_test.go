package ng

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestReplyCacheAnswersCopiesAndForgetsAfterTTL(t *testing.T) {
	t.Parallel()
	c := newReplyCache(time.Minute, 10, 1<<20, 2)
	k := cacheKey{"127.0.0.1:5060", "1_2_3"}
	t0 := time.Unix(1000, 0)
	v, e, _ := c.arrive(k, t0)
	if v != execute {
		t.Fatalf("first copy: verdict %d, want execute", v)
	}
	for i, want := range []verdict{park, park, drop} {
		if v, _, _ := c.arrive(k, t0.Add(time.Second)); v != want {
			t.Errorf("copy %d in flight: verdict %d, want %d", i+2, v, want)
		}
	}
	if n := c.complete(e, []byte("1_2_3 d6:result4:ponge")); n != 2 {
		t.Errorf("complete: %d parked copies, want 2", n)
	}
	if v, _, reply := c.arrive(k, t0.Add(59*time.Second)); v != replay || string(reply) != "1_2_3 d6:result4:ponge" {
		t.Errorf("copy after completion: verdict %d reply %q, want the reply", v, reply)
	}
	if v, _, _ := c.arrive(cacheKey{"127.0.0.1:5061", "1_2_3"}, t0.Add(59*time.Second)); v != execute {
		t.Errorf("the same cookie from another sender: verdict %d, want execute", v)
	}
	if v, _, _ := c.arrive(k, t0.Add(time.Minute)); v != execute {
		t.Errorf("copy after the TTL: verdict %d, want execute", v)
	}
	if n, _ := c.len(); n != 2 {
		t.Errorf("%d entries, want the 2 of the last minute", n)
	}
}

func TestReplyCacheDropsTheOldestWhenFull(t *testing.T) {
	t.Parallel()
	c := newReplyCache(time.Minute, 100, 1<<20, 2)
	t0 := time.Unix(1000, 0)
	first, e, _ := c.arrive(cacheKey{"a", "0"}, t0)
	for i := 1; i < 1000; i++ {
		if v, e, _ := c.arrive(cacheKey{"a", fmt.Sprint(i)}, t0.Add(time.Duration(i)*time.Millisecond)); v == execute {
			c.complete(e, []byte("reply"))
		}
	}
	if n, _ := c.len(); n != 100 {
		t.Errorf("%d entries, want 100", n)
	}
	if v, _, _ := c.arrive(cacheKey{"a", "999"}, t0.Add(time.Second)); v != replay {
		t.Errorf("the newest entry: verdict %d, want replay", v)
	}
	// The first entry left while in flight; completing it is harmless.
	if first != execute || c.complete(e, []byte("late")) != 0 {
		t.Error("completing an entry dropped while in flight")
	}
	if len(c.queue) > 2*100+64 {
		t.Errorf("queue holds %d slots for 100 entries", len(c.queue))
	}
}

func TestReplyCacheHoldsItsByteBudget(t *testing.T) {
	t.Parallel()
	const budget = 64 << 10
	c := newReplyCache(time.Minute, 1<<16, budget, 2)
	t0 := time.Unix(1000, 0)
	cookie := strings.Repeat("c", 2000)
	for i := range 1000 {
		k := cacheKey{"192.0.2.1:5060", fmt.Sprint(cookie, i)}
		if v, e, _ := c.arrive(k, t0); v == execute {
			c.complete(e, []byte(k.cookie+" d6:result5:error12:error-reason21:Invalid NG data formate"))
		}
		if _, b := c.len(); b > budget {
			t.Fatalf("after %d requests the cache holds %d bytes, above its budget of %d", i+1, b, budget)
		}
	}
	n, b := c.len()
	if n < 10 || b < budget/2 {
		t.Errorf("the cache holds %d entries in %d bytes: the budget is not used", n, b)
	}
	if v, _, _ := c.arrive(cacheKey{"192.0.2.1:5060", fmt.Sprint(cookie, 999)}, t0); v != replay {
		t.Errorf("the newest entry: verdict %d, want replay", v)
	}
	if v, _, _ := c.arrive(cacheKey{"192.0.2.1:5060", fmt.Sprint(cookie, 0)}, t0); v != execute {
		t.Errorf("the oldest entry: verdict %d, want execute (evicted)", v)
	}
}
