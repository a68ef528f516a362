package ng

import (
	"sync"
	"time"
)

// replyCache remembers the reply to each (sender, cookie) for ttl, so that a
// retransmission is answered without executing the command again. An entry
// exists from the moment the first copy arrives; copies that arrive while
// it is being processed wait for its reply. Safe for concurrent use.
type replyCache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]*cached
}

type cached struct {
	done    chan struct{} // closed when reply is set
	reply   []byte
	created time.Time
}

func newReplyCache(ttl time.Duration, max int) *replyCache {
	return &replyCache{ttl: ttl, max: max, entries: map[string]*cached{}}
}

// claim returns the entry for key and whether the caller is the first (and
// must fill it with fill).
func (c *replyCache) claim(key string, now time.Time) (*cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && now.Sub(e.created) < c.ttl {
		return e, false
	}
	if len(c.entries) >= c.max {
		c.expireLocked(now)
	}
	e := &cached{done: make(chan struct{}), created: now}
	c.entries[key] = e
	return e, true
}

// fill sets the reply of an entry claimed first.
func (c *replyCache) fill(e *cached, reply []byte) {
	e.reply = reply
	close(e.done)
}

// expire drops entries older than ttl.
func (c *replyCache) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
}

func (c *replyCache) expireLocked(now time.Time) {
	for k, e := range c.entries {
		if now.Sub(e.created) >= c.ttl {
			select {
			case <-e.done:
				delete(c.entries, k)
			default: // still being processed: keep it so copies keep waiting
			}
		}
	}
}

func (c *replyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
