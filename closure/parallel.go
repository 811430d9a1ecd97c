package closure

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallel runs work on indexes 0..n-1 with up to jobs goroutines, each
// getting its own function from newWorker (for per-worker buffers). Indexes
// are handed out in increasing order; once a call returns false no further
// indexes are started.
func parallel(n, jobs int, newWorker func() func(i int) bool) {
	if jobs <= 0 {
		jobs = 1
	}
	if jobs > n {
		jobs = n
	}
	var next atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work := newWorker()
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if !work(i) {
					stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
}

// DefaultJobs is the default parallelism: the number of usable CPUs.
func DefaultJobs() int { return runtime.GOMAXPROCS(0) }
