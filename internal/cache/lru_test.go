package cache

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLRU(t *testing.T) {
	c := New[int, int](10)
	loads := 0
	get := func(k int) int {
		v, err := c.Get(k, func() (int, int64, error) { loads++; return k * 10, 4, nil })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	get(1)
	get(2)
	get(1) // 1 is now the most recent
	get(3) // 12 > 10: evicts 2
	if loads != 3 || c.Used() != 8 || c.Len() != 2 {
		t.Fatalf("loads %d, used %d, len %d", loads, c.Used(), c.Len())
	}
	if get(1) != 10 || loads != 3 {
		t.Fatalf("1 was evicted (loads %d)", loads)
	}
	get(2)
	if loads != 4 {
		t.Fatalf("2 was not evicted (loads %d)", loads)
	}
	// Too big to cache; errors are not cached.
	c.Get(9, func() (int, int64, error) { return 0, 11, nil })
	if _, err := c.Get(8, func() (int, int64, error) { return 0, 1, errors.New("boom") }); err == nil {
		t.Fatal("error lost")
	}
	if c.Len() != 2 || c.Used() > c.Capacity() {
		t.Fatalf("len %d, used %d", c.Len(), c.Used())
	}

	// Concurrent misses on one key share one load.
	var n atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			v, err := c.Get(42, func() (int, int64, error) {
				n.Add(1)
				time.Sleep(20 * time.Millisecond)
				return 7, 1, nil
			})
			if v != 7 || err != nil {
				t.Errorf("get = %d, %v", v, err)
			}
		})
	}
	wg.Wait()
	if n.Load() != 1 {
		t.Fatalf("%d loads of one key", n.Load())
	}

	// A panicking load releases its waiters with an error.
	func() {
		defer func() { recover() }()
		c.Get(99, func() (int, int64, error) { panic("x") })
	}()
	if _, err := c.Get(99, func() (int, int64, error) { return 1, 1, nil }); err != nil {
		t.Fatalf("after a panicked load: %v", err)
	}
}
