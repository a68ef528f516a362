package rtpproxy

import (
	"container/list"
	"time"
)

// Bounds of the UDP reply cache. Kamailio resends a command with the same
// cookie after 1 s, 5 times by default (rtpproxy_tout, rtpproxy_retr).
const (
	cacheTTL  = 30 * time.Second
	cacheSize = 1 << 16
	// DefaultCacheBytes is the cache's byte budget unless SocketOptions
	// set one.
	DefaultCacheBytes = 16 << 20
	// entryOverhead approximates an entry's cost beyond its key and reply:
	// the entry, its list element and its map slot.
	entryOverhead = 128
)

// replyCache holds the replies of recent commands by sender and cookie,
// so a retransmitted command is answered again without running twice.
// It is bounded in age, entries and bytes (key, reply and entryOverhead
// per entry), the oldest leaving first; not safe for concurrent use.
type replyCache struct {
	now     func() time.Time
	ttl     time.Duration
	max     int
	budget  int
	bytes   int
	entries map[string]*list.Element
	order   *list.List // of *cached, oldest first
}

type cached struct {
	key   string
	reply []byte
	at    time.Time
}

func (c *cached) size() int { return entryOverhead + len(c.key) + len(c.reply) }

func newReplyCache(now func() time.Time, budget int) *replyCache {
	if budget <= 0 {
		budget = DefaultCacheBytes
	}
	return &replyCache{now: now, ttl: cacheTTL, max: cacheSize, budget: budget,
		entries: map[string]*list.Element{}, order: list.New()}
}

// get returns the reply cached for key.
func (c *replyCache) get(key string) ([]byte, bool) {
	c.expire()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	return e.Value.(*cached).reply, true
}

// put caches reply for key, evicting the oldest entries beyond the bounds.
func (c *replyCache) put(key string, reply []byte) {
	if e, ok := c.entries[key]; ok {
		c.drop(e)
	}
	v := &cached{key: key, reply: reply, at: c.now()}
	c.entries[key] = c.order.PushBack(v)
	c.bytes += v.size()
	for c.order.Len() > c.max || c.bytes > c.budget {
		c.drop(c.order.Front())
	}
}

func (c *replyCache) expire() {
	for e := c.order.Front(); e != nil && c.now().Sub(e.Value.(*cached).at) >= c.ttl; e = c.order.Front() {
		c.drop(e)
	}
}

func (c *replyCache) drop(e *list.Element) {
	v := e.Value.(*cached)
	delete(c.entries, v.key)
	c.bytes -= v.size()
	c.order.Remove(e)
}
