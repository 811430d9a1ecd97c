// Package pipeline runs work on several goroutines and hands the results
// to one consumer in the order the work was submitted: the shape of every
// parallel job in closurefs (compress blocks, emit them in image order;
// hash paths, report them in closure order). Memory stays bounded: at most
// a fixed number of items are in flight whatever the input size.
package pipeline

import (
	"context"
	"runtime"
	"sync"
)

// Ordered is an ordered parallel map. Submit items with Submit; work runs
// them on the workers; emit receives the results in submission order on a
// single goroutine. Close waits for everything and returns the first error.
type Ordered[In, Out any] struct {
	work  func(In) (Out, error)
	emit  func(Out) error
	jobs  chan *slot[In, Out]
	order chan *slot[In, Out]
	done  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	err    error
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
}

type slot[In, Out any] struct {
	in   In
	out  Out
	err  error
	done chan struct{}
}

// New starts an ordered pipeline with the given number of workers (0 means
// one per CPU) and at most 2*workers items in flight (submitted but not yet
// emitted). work may run concurrently with itself; emit is never called
// concurrently with itself.
func New[In, Out any](ctx context.Context, workers int, work func(In) (Out, error), emit func(Out) error) *Ordered[In, Out] {
	return NewDepth(ctx, workers, 2*max(workers, 1), work, emit)
}

// NewDepth is New with an explicit bound on items in flight.
func NewDepth[In, Out any](ctx context.Context, workers, depth int, work func(In) (Out, error), emit func(Out) error) *Ordered[In, Out] {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if depth < workers {
		depth = workers
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Ordered[In, Out]{
		work:   work,
		emit:   emit,
		jobs:   make(chan *slot[In, Out], depth),
		order:  make(chan *slot[In, Out], depth),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go p.worker()
	}
	go p.emitter()
	return p
}

func (p *Ordered[In, Out]) worker() {
	defer p.wg.Done()
	for s := range p.jobs {
		if p.ctx.Err() == nil {
			s.out, s.err = p.work(s.in)
		} else {
			s.err = p.ctx.Err()
		}
		close(s.done)
	}
}

func (p *Ordered[In, Out]) emitter() {
	defer close(p.done)
	for s := range p.order {
		<-s.done
		if p.Err() != nil {
			continue // drain
		}
		err := s.err
		if err == nil {
			err = p.emit(s.out)
		}
		if err != nil {
			p.fail(err)
		}
	}
}

func (p *Ordered[In, Out]) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.cancel()
}

// Err returns the first error seen so far.
func (p *Ordered[In, Out]) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Submit queues one item, blocking while the pipeline is full. It returns
// the first error seen so far (after which further items are not run), or
// the context's error.
func (p *Ordered[In, Out]) Submit(in In) error {
	if err := p.Err(); err != nil {
		return err
	}
	s := &slot[In, Out]{in: in, done: make(chan struct{})}
	select {
	case p.order <- s:
	case <-p.ctx.Done():
		if err := p.Err(); err != nil {
			return err
		}
		return p.ctx.Err()
	}
	p.jobs <- s // never blocks for long: jobs has the same capacity as order
	return nil
}

// Close waits for all submitted items to be emitted, stops the workers and
// returns the first error.
func (p *Ordered[In, Out]) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return p.Err()
	}
	p.closed = true
	p.mu.Unlock()
	close(p.order)
	close(p.jobs)
	p.wg.Wait()
	<-p.done
	err := p.Err()
	if err == nil {
		err = p.ctx.Err()
	}
	p.cancel()
	return err
}
