package erofs

import (
	"container/list"
	"sync"
)

// lru is a cost-bounded least-recently-used cache, safe for concurrent use.
type rdLRU[K comparable, V any] struct {
	mu    sync.Mutex
	max   int64
	used  int64
	cost  func(V) int64
	order *list.List // front = most recent
	items map[K]*list.Element
}

type rdLRUEntry[K comparable, V any] struct {
	key  K
	val  V
	cost int64
}

func newRdLRU[K comparable, V any](max int64, cost func(V) int64) *rdLRU[K, V] {
	return &rdLRU[K, V]{max: max, cost: cost, order: list.New(), items: map[K]*list.Element{}}
}

func (c *rdLRU[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*rdLRUEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

func (c *rdLRU[K, V]) put(k K, v V) {
	cost := c.cost(v)
	if c.max <= 0 || cost > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(&rdLRUEntry[K, V]{k, v, cost})
	c.used += cost
	for c.used > c.max {
		e := c.order.Back()
		ent := e.Value.(*rdLRUEntry[K, V])
		c.order.Remove(e)
		delete(c.items, ent.key)
		c.used -= ent.cost
	}
}
