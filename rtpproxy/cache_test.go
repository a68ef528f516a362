package rtpproxy

import (
	"fmt"
	"testing"
	"time"
)

func TestReplyCacheForgetsOldAndSurplusReplies(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	c := newReplyCache(func() time.Time { return now })
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
