package lrkproxy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestReplyCacheHoldsItsByteBudget(t *testing.T) {
	t.Parallel()
	const budget = 64 << 10
	c := newReplyCache(time.Minute, 1<<16, budget)
	t0 := time.Unix(1000, 0)
	cookie := strings.Repeat("c", 2000)
	for i := range 1000 {
		key := fmt.Sprint("192.0.2.1:5060 ", cookie, i)
		e, first := c.claim(key, t0)
		if !first {
			t.Fatalf("request %d: not the first claimant", i)
		}
		c.fill(e, []byte(cookie+" E unknown command"))
		if _, b := c.len(); b > budget {
			t.Fatalf("after %d requests the cache holds %d bytes, above its budget of %d", i+1, b, budget)
		}
	}
	if n, b := c.len(); n < 10 || b < budget/2 {
		t.Errorf("%d entries in %d bytes: the budget is not used", n, b)
	}
	if e, first := c.claim(fmt.Sprint("192.0.2.1:5060 ", cookie, 999), t0); first || e.reply == nil {
		t.Error("the newest reply was evicted")
	}
}

func TestReplyCacheAnswersCopiesUntilTheTTL(t *testing.T) {
	t.Parallel()
	c := newReplyCache(time.Minute, 2, 1<<20)
	t0 := time.Unix(1000, 0)
	e, first := c.claim("a 1", t0)
	if again, f := c.claim("a 1", t0.Add(time.Second)); !first || f || again != e {
		t.Fatal("a copy in flight did not find the first claim")
	}
	c.fill(e, []byte("1 P PONG"))
	<-e.done
	c.claim("a 2", t0.Add(2*time.Second))
	c.claim("a 3", t0.Add(3*time.Second))
	if n, _ := c.len(); n != 2 {
		t.Errorf("%d entries, want the cap of 2", n)
	}
	if _, first := c.claim("a 3", t0.Add(63*time.Second)); !first {
		t.Error("an entry outlived the TTL")
	}
}
