package erofs

import (
	"math/rand"
	"testing"
	"time"
)

// TestMutatedImages feeds thousands of randomly damaged variants of real
// mkfs.erofs images (bytes overwritten, ranges cut out, zeros inserted,
// random 64-bit values) through Open and a whole-image walk. Every variant
// must be read or rejected with an error within a time bound: no panic,
// hang or runaway allocation.
func TestMutatedImages(t *testing.T) {
	seeds := rdFuzzSeedsT(t)
	if len(seeds) == 0 {
		t.Skip("mkfs.erofs not installed")
	}
	for i, s := range seeds {
		rd, err := rdFuzzOpen(s)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if err := rdWalkAll(rd, 1000, 4<<20); err != nil {
			t.Fatalf("seed %d: walk: %v", i, err)
		}
	}
	rng := rand.New(rand.NewSource(1))
	opened, failed := 0, 0
	for it := 0; it < 4000; it++ {
		s := append([]byte(nil), seeds[rng.Intn(len(seeds))]...)
		for k := rng.Intn(8) + 1; k > 0 && len(s) > 16; k-- {
			i := rng.Intn(len(s))
			switch rng.Intn(6) {
			case 0:
				s[i] = byte(rng.Intn(256))
			case 1:
				s[i] ^= 1 << rng.Intn(8)
			case 2:
				s[i] = 0xff
			case 3:
				j := rng.Intn(len(s))
				s = append(s[:min(i, j)], s[max(i, j):]...)
			case 4:
				s = append(s[:i], append(make([]byte, rng.Intn(5000)), s[i:]...)...)
			case 5:
				for b := 0; b < 8 && i+b < len(s); b++ {
					s[i+b] = byte(rng.Intn(256))
				}
			}
		}
		done := make(chan error, 1)
		go func() {
			rd, err := rdFuzzOpen(s)
			if err == nil {
				rd.Info()
				err = rdWalkAll(rd, 1000, 4<<20)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				opened++
			} else {
				failed++
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("variant %d took more than 20s", it)
		}
	}
	t.Logf("%d variants read cleanly, %d rejected with errors", opened, failed)
	if failed == 0 {
		t.Error("no damaged image was rejected")
	}
}
