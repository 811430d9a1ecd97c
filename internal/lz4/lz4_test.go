package lz4

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	plz4 "github.com/pierrec/lz4/v4"
)

func samples(t testing.TB) [][]byte {
	var out [][]byte
	r := rand.New(rand.NewPCG(1, 2))
	rnd := make([]byte, 20000)
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	out = append(out, nil, []byte("a"), []byte("hello, hello, hello, hello!"), rnd, make([]byte, 100000))
	var text bytes.Buffer
	for i := 0; text.Len() < 200000; i++ {
		text.WriteString("some text with repeats ")
		text.WriteByte(byte('a' + i%26))
		text.WriteByte(byte(r.Uint32()))
	}
	out = append(out, text.Bytes())
	// Real binaries and text, if present.
	for _, p := range []string{"/usr/local/go/bin/go", "/usr/share/common-licenses/GPL-3", "/bin/bash"} {
		if b, err := os.ReadFile(p); err == nil {
			for off := 0; off+65536 <= len(b) && off < 4<<20; off += 1 << 20 {
				out = append(out, b[off:off+65536])
			}
			out = append(out, b[:min(len(b), 16384)])
		}
	}
	_ = filepath.Join
	return out
}

// TestRoundTrip decodes every block with pierrec/lz4, an independent
// decoder that enforces the block format's end rules.
func TestRoundTrip(t *testing.T) {
	for _, lvl := range []int{1, 9, 12} {
		e := Level(lvl)
		for i, s := range samples(t) {
			blk := e.Encode(nil, s)
			out := make([]byte, len(s)+16)
			n, err := plz4.UncompressBlock(blk, out)
			if len(s) == 0 {
				continue
			}
			if err != nil || !bytes.Equal(out[:n], s) {
				t.Fatalf("level %d sample %d (%d bytes): round trip failed: %v (n=%d)", lvl, i, len(s), err, n)
			}
		}
	}
}

// TestSmallerThanGreedyHC compares block sizes with pierrec/lz4's HC
// encoder at its highest level on the samples.
func TestSmallerThanGreedyHC(t *testing.T) {
	var ours, theirs int
	for _, s := range samples(t) {
		if len(s) < 1000 {
			continue
		}
		ours += len(Level(9).Encode(nil, s))
		dst := make([]byte, plz4.CompressBlockBound(len(s)))
		c := plz4.CompressorHC{Level: plz4.Level9}
		n, _ := c.CompressBlock(s, dst)
		if n == 0 {
			n = len(s) + len(s)/255 + 16
		}
		theirs += n
	}
	t.Logf("optimal parse: %d bytes, pierrec HC 9: %d bytes (%.2f%%)", ours, theirs, 100*float64(ours)/float64(theirs))
	if ours > theirs {
		t.Errorf("optimal parse larger than greedy HC: %d > %d", ours, theirs)
	}
}

func BenchmarkEncode(b *testing.B) {
	s := samples(b)
	var total int64
	for _, x := range s {
		total += int64(len(x))
	}
	b.SetBytes(total)
	e := Level(9)
	var dst []byte
	for b.Loop() {
		for _, x := range s {
			dst = e.Encode(dst[:0], x)
		}
	}
}
