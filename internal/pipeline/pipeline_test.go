package pipeline

import (
	"context"
	"errors"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"
)

func TestOrder(t *testing.T) {
	for _, workers := range []int{1, 2, 7} {
		var got []int
		var inFlight, peak atomic.Int64
		p := New(context.Background(), workers, func(i int) (int, error) {
			n := inFlight.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(time.Duration(rand.Intn(200)) * time.Microsecond)
			inFlight.Add(-1)
			return i * i, nil
		}, func(v int) error {
			got = append(got, v)
			return nil
		})
		for i := 0; i < 500; i++ {
			if err := p.Submit(i); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if len(got) != 500 {
			t.Fatalf("workers=%d: %d results, want 500", workers, len(got))
		}
		for i, v := range got {
			if v != i*i {
				t.Fatalf("workers=%d: result %d = %d, want %d", workers, i, v, i*i)
			}
		}
		if peak.Load() > int64(workers) {
			t.Errorf("workers=%d: %d ran at once", workers, peak.Load())
		}
	}
}

func TestBoundedInFlight(t *testing.T) {
	var submitted, emitted atomic.Int64
	release := make(chan struct{})
	p := NewDepth(context.Background(), 2, 4, func(i int) (int, error) { return i, nil }, func(int) error {
		<-release
		emitted.Add(1)
		return nil
	})
	go func() {
		for i := 0; i < 100; i++ {
			p.Submit(i)
			submitted.Add(1)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if n := submitted.Load(); n > 4+1 {
		t.Errorf("%d items submitted while emit is blocked; want at most 5", n)
	}
	close(release)
	for submitted.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if emitted.Load() != 100 {
		t.Fatalf("emitted %d, want 100", emitted.Load())
	}
}

func TestErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		work     func(int) (int, error)
		emit     func(int) error
		wantLast int // the last value emitted before the error
	}{
		{"work", func(i int) (int, error) {
			if i == 10 {
				return 0, boom
			}
			return i, nil
		}, nil, 9},
		{"emit", func(i int) (int, error) { return i, nil }, func(i int) error {
			if i == 20 {
				return boom
			}
			return nil
		}, 20},
	}
	for _, tt := range tests {
		last := -1
		p := New(context.Background(), 3, tt.work, func(v int) error {
			last = v
			if tt.emit != nil {
				return tt.emit(v)
			}
			return nil
		})
		for i := 0; i < 1000; i++ {
			if err := p.Submit(i); err != nil {
				break
			}
		}
		if err := p.Close(); !errors.Is(err, boom) {
			t.Errorf("%s: Close = %v, want boom", tt.name, err)
		}
		if last != tt.wantLast {
			t.Errorf("%s: last emitted %d, want %d", tt.name, last, tt.wantLast)
		}
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := New(ctx, 2, func(i int) (int, error) { return i, nil }, func(int) error { return nil })
	p.Submit(1)
	cancel()
	for i := 0; i < 100; i++ {
		if p.Submit(i) != nil {
			break
		}
	}
	if err := p.Close(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
}
