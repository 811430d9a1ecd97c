package lz4

import (
	"os"
	"testing"
	"time"
)

func TestDepthTradeoff(t *testing.T) {
	if os.Getenv("LZ4_TRADEOFF") == "" {
		t.Skip("set LZ4_TRADEOFF=1")
	}
	var chunks [][]byte
	for _, p := range []string{"/usr/local/go/pkg/tool/linux_amd64/compile", "/usr/local/go/src/net/http/server.go", "/usr/share/doc/git/RelNotes/2.0.0.txt", "/bin/bash", "/usr/local/go/pkg/tool/linux_amd64/link"} {
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
	for _, d := range []int{8, 16, 32, 64, 128} {
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
