package lrkproxy

import (
	"container/list"
	"sync"
	"time"
)

// DefaultCacheBytes is the reply cache's byte budget unless Options set one.
const DefaultCacheBytes = 16 << 20

// entryOverhead approximates an entry's cost beyond its key and reply: the
// entry, its channel, its list element and its map slot.
const entryOverhead = 192

// replyCache remembers the reply to each (sender, cookie) for ttl: the
// module resends a request with the same cookie when its reply is late
// (lrkproxy_retr times, lrkproxy_tout seconds apart), and a resent S must
// not be executed twice. Copies that arrive while the first is processed
// wait for its reply. The oldest entries leave first when more than max
// are held or their bytes (key, reply and entryOverhead each) exceed
// budget; an entry that leaves in flight still answers its waiting copies.
// Safe for concurrent use.
type replyCache struct {
	ttl    time.Duration
	max    int
	budget int

	mu      sync.Mutex
	bytes   int
	entries map[string]*list.Element
	order   *list.List // of *cached, oldest first
}

type cached struct {
	key     string
	done    chan struct{} // closed once reply is set
	reply   []byte
	created time.Time
	size    int  // bytes counted against the budget
	held    bool // in entries
}

func newReplyCache(ttl time.Duration, max, budget int) *replyCache {
	return &replyCache{ttl: ttl, max: max, budget: budget, entries: map[string]*list.Element{}, order: list.New()}
}

// claim returns the entry for key and whether the caller is its first
// claimant, who must fill it.
func (c *replyCache) claim(key string, now time.Time) (*cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	if el, ok := c.entries[key]; ok {
		return el.Value.(*cached), false
	}
	e := &cached{key: key, done: make(chan struct{}), created: now, size: entryOverhead + len(key), held: true}
	c.entries[key] = c.order.PushBack(e)
	c.bytes += e.size
	c.evict()
	return e, true
}

// fill sets the reply of an entry claim returned first and wakes its
// waiting copies.
func (c *replyCache) fill(e *cached, reply []byte) {
	c.mu.Lock()
	e.reply = reply
	if e.held {
		e.size += len(reply)
		c.bytes += len(reply)
		c.evict()
	}
	c.mu.Unlock()
	close(e.done)
}

// evict drops the oldest entries beyond the bounds.
func (c *replyCache) evict() {
	for c.order.Len() > 0 && (c.order.Len() > c.max || c.bytes > c.budget) {
		c.drop(c.order.Front())
	}
}

func (c *replyCache) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
}

func (c *replyCache) expireLocked(now time.Time) {
	for el := c.order.Front(); el != nil && now.Sub(el.Value.(*cached).created) >= c.ttl; el = c.order.Front() {
		c.drop(el)
	}
}

func (c *replyCache) drop(el *list.Element) {
	e := el.Value.(*cached)
	delete(c.entries, e.key)
	c.order.Remove(el)
	c.bytes -= e.size
	e.held = false
}

// len returns the number of entries held and their bytes.
func (c *replyCache) len() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.bytes
}
