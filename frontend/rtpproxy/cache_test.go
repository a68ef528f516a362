package rtpproxy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestReplyCacheForgetsOldAndSurplusReplies(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	c := newReplyCache(func() time.Time { return now }, 0)
	c.max = 3
	for i := range 4 {
		c.put(fmt.Sprint(i), []byte{byte(i)})
	}
	if _, ok := c.get("0"); ok {
		t.Error("the oldest of four replies survived a cache of three")
	}
	if r, ok := c.get("3"); !ok || r[0] != 3 {
		t.Errorf("newest reply: %v %v", r, ok)
	}
	now = now.Add(cacheTTL - time.Second)
	c.put("4", []byte{4})
	now = now.Add(time.Second)
	for _, k := range []string{"1", "2", "3"} {
		if _, ok := c.get(k); ok {
			t.Errorf("reply %s outlived the TTL", k)
		}
	}
	if _, ok := c.get("4"); !ok || c.order.Len() != 1 || len(c.entries) != 1 {
		t.Errorf("after expiry: %d entries, %d in order; want reply 4 alone", len(c.entries), c.order.Len())
	}
}

func TestReplyCacheHoldsItsByteBudget(t *testing.T) {
	t.Parallel()
	const budget = 64 << 10
	c := newReplyCache(time.Now, budget)
	cookie := strings.Repeat("c", 2000)
	for i := range 1000 {
		key := fmt.Sprint("192.0.2.1:5060 ", cookie, i)
		c.put(key, []byte(cookie+" E1\n"))
		if c.bytes > budget {
			t.Fatalf("after %d commands the cache holds %d bytes, above its budget of %d", i+1, c.bytes, budget)
		}
	}
	if c.order.Len() < 10 || c.bytes < budget/2 {
		t.Errorf("%d entries in %d bytes: the budget is not used", c.order.Len(), c.bytes)
	}
	if _, ok := c.get(fmt.Sprint("192.0.2.1:5060 ", cookie, 999)); !ok {
		t.Error("the newest reply was evicted")
	}
}
