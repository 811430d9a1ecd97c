package lz4

import (
	"os"
	"strconv"
	"testing"
	"time"
)

func TestDepthTradeoff(t *testing.T) {
	if os.Getenv("LZ4_TRADEOFF") == "" {
		t.Skip("set LZ4_TRADEOFF=1")
	}
	var chunks [][]byte
	for _, p := range []string{"/tmp/zt/src/go/src/runtime/race/race_linux_arm64.syso"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for off := 0; off+14000 <= len(b) && off < 8<<20; off += 14000 {
			chunks = append(chunks, b[off:off+14000])
		}
	}
	var in int
	for _, c := range chunks {
		in += len(c)
	}
	depths := []int{16, 64, 256, 1024}
	if v := os.Getenv("LZ4_DEPTH"); v != "" {
		n, _ := strconv.Atoi(v)
		depths = []int{n}
	}
	for _, d := range depths {
		e := &Encoder{Depth: d}
		start := time.Now()
		out := 0
		var dst []byte
		for _, c := range chunks {
			dst = e.Encode(dst[:0], c)
			out += len(dst)
		}
		t.Logf("depth %3d: ratio %.4f, %.1f MB/s", d, float64(out)/float64(in), float64(in)/time.Since(start).Seconds()/1e6)
	}
}
