package squashfs

import (
	"container/list"
	"errors"
	"sync"
)

// lru is a size-bounded least-recently-used cache that is safe for
// concurrent use. Concurrent misses on one key share one load, so a block
// is decompressed once however many readers want it; loads of different
// keys run in parallel.
type lru[K comparable, V any] struct {
	mu       sync.Mutex
	capacity int64 // total cost allowed
	used     int64
	order    *list.List // front: most recently used; values are *lruEntry
	entries  map[K]*list.Element
	inflight map[K]*lruCall[V]
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	cost int64
}

type lruCall[V any] struct {
	done chan struct{}
	val  V
	cost int64
	err  error
	ok   bool // load returned
}

func newLRU[K comparable, V any](capacity int64) *lru[K, V] {
	return &lru[K, V]{
		capacity: capacity,
		order:    list.New(),
		entries:  make(map[K]*list.Element),
		inflight: make(map[K]*lruCall[V]),
	}
}

// get returns the cached value of key or loads it with load, which
// returns the value and its cost. Errors are not cached.
func (c *lru[K, V]) get(key K, load func() (V, int64, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.order.MoveToFront(e)
		v := e.Value.(*lruEntry[K, V]).val
		c.mu.Unlock()
		return v, nil
	}
	if call, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		<-call.done
		return call.val, call.err
	}
	call := &lruCall[V]{done: make(chan struct{})}
	c.inflight[key] = call
	c.mu.Unlock()

	// Waiters are released even if load panics.
	defer func() {
		c.mu.Lock()
		delete(c.inflight, key)
		if call.err == nil && call.cost <= c.capacity && call.ok {
			c.entries[key] = c.order.PushFront(&lruEntry[K, V]{key: key, val: call.val, cost: call.cost})
			c.used += call.cost
			for c.used > c.capacity {
				back := c.order.Back()
				ent := back.Value.(*lruEntry[K, V])
				c.order.Remove(back)
				delete(c.entries, ent.key)
				c.used -= ent.cost
			}
		}
		c.mu.Unlock()
		if !call.ok && call.err == nil {
			call.err = errLoadPanicked
		}
		close(call.done)
	}()
	call.val, call.cost, call.err = load()
	call.ok = true
	return call.val, call.err
}

var errLoadPanicked = errors.New("squashfs: cache load panicked")

// len reports the number of cached entries.
func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
