// Package cache is the bounded cache the image readers keep decoded
// blocks, metadata and inodes in.
package cache

import (
	"container/list"
	"errors"
	"sync"
)

// LRU is a cost-bounded least-recently-used cache that is safe for
// concurrent use. Concurrent misses on one key share one load, so a block
// is decompressed once however many readers want it; loads of different
// keys run in parallel.
type LRU[K comparable, V any] struct {
	mu       sync.Mutex
	capacity int64 // total cost allowed
	used     int64
	order    *list.List // front: most recently used; values are *entry
	entries  map[K]*list.Element
	inflight map[K]*call[V]
}

type entry[K comparable, V any] struct {
	key  K
	val  V
	cost int64
}

type call[V any] struct {
	done chan struct{}
	val  V
	cost int64
	err  error
	ok   bool // load returned
}

// ErrLoadPanicked is what waiters on a load that panicked get.
var ErrLoadPanicked = errors.New("cache: load panicked")

// New returns an LRU holding values of total cost at most capacity.
func New[K comparable, V any](capacity int64) *LRU[K, V] {
	return &LRU[K, V]{
		capacity: capacity,
		order:    list.New(),
		entries:  make(map[K]*list.Element),
		inflight: make(map[K]*call[V]),
	}
}

// Peek returns the cached value of key, if any, marking it recently used.
func (c *LRU[K, V]) Peek(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*entry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// Get returns the cached value of key or loads it with load, which
// returns the value and its cost. Errors are not cached, nor values that
// cost more than the whole capacity.
func (c *LRU[K, V]) Get(key K, load func() (V, int64, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.order.MoveToFront(e)
		v := e.Value.(*entry[K, V]).val
		c.mu.Unlock()
		return v, nil
	}
	if cl, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		<-cl.done
		return cl.val, cl.err
	}
	cl := &call[V]{done: make(chan struct{})}
	c.inflight[key] = cl
	c.mu.Unlock()

	// Waiters are released even if load panics.
	defer func() {
		c.mu.Lock()
		delete(c.inflight, key)
		if cl.err == nil && cl.cost <= c.capacity && cl.ok {
			c.entries[key] = c.order.PushFront(&entry[K, V]{key: key, val: cl.val, cost: cl.cost})
			c.used += cl.cost
			for c.used > c.capacity {
				back := c.order.Back()
				ent := back.Value.(*entry[K, V])
				c.order.Remove(back)
				delete(c.entries, ent.key)
				c.used -= ent.cost
			}
		}
		c.mu.Unlock()
		if !cl.ok && cl.err == nil {
			cl.err = ErrLoadPanicked
		}
		close(cl.done)
	}()
	cl.val, cl.cost, cl.err = load()
	cl.ok = true
	return cl.val, cl.err
}

// Len reports the number of cached entries.
func (c *LRU[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Used reports the total cost of the cached entries.
func (c *LRU[K, V]) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Capacity reports the total cost the cache may hold.
func (c *LRU[K, V]) Capacity() int64 { return c.capacity }
