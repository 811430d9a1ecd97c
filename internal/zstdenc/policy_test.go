package zstdenc

import (
	"fmt"
	"math"
	"os"
	"testing"
)

// TestPolicyDump writes, per sample block, its order-0 entropy, our and
// klauspost's sizes and CPU times to $ZSTDENC_POLICY, for tuning the
// parameters and the high-entropy gate (a measurement, run on request).
func TestPolicyDump(t *testing.T) {
	if os.Getenv("ZSTDENC_POLICY") == "" {
		t.Skip()
	}
	blocks := sampleBlocks(t, 3)
	p := DefaultParams
	if v := os.Getenv("ZSTDENC_PARAMS"); v != "" {
		fmt.Sscanf(v, "%d,%d,%d,%t,%d,%t,%t,%d,%d,%t", &p.Depth, &p.Nice, &p.Passes, &p.Greedy, &p.Tail, &p.NoSkipInsert, &p.NoHash3, &p.Rows, &p.LitFlat, &p.Predefined)
	}
	e := NewEncoder(p)
	kp := newKP()
	f, _ := os.Create(os.Getenv("ZSTDENC_POLICY"))
	defer f.Close()
	for _, b := range blocks {
		var h [256]int
		for _, c := range b {
			h[c]++
		}
		ent := 0.0
		for _, c := range h {
			if c > 0 {
				p := float64(c) / float64(len(b))
				ent -= p * math.Log2(p)
			}
		}
		t0 := cpuNow()
		o := len(e.Compress(nil, b))
		d1 := cpuNow() - t0
		t0 = cpuNow()
		k := len(kp.EncodeAll(b, nil))
		d2 := cpuNow() - t0
		fmt.Fprintf(f, "%.3f %d %d %d %d\n", ent, min(o, len(b)), min(k, len(b)), d1.Microseconds(), d2.Microseconds())
	}
}
