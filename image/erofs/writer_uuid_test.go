package erofs

import (
	"bytes"
	"hash/crc32"
	"math/rand"
	"testing"
)

func TestContentSum(t *testing.T) {
	data := make([]byte, 3*contentChunk+123)
	rand.New(rand.NewSource(1)).Read(data)
	sum := func(b []byte, split int) []byte {
		s := newContentSum()
		for len(b) > 0 {
			k := min(split, len(b))
			s.Write(b[:k])
			b = b[k:]
		}
		return s.Sum(nil)
	}
	want := sum(data, len(data))
	for _, split := range []int{1, 7, 4096, contentChunk - 1, contentChunk, contentChunk + 1} {
		if got := sum(data, split); !bytes.Equal(got, want) {
			t.Errorf("writes of %d bytes: sum %x, want %x", split, got, want)
		}
	}
	for _, pos := range []int{0, contentChunk - 1, contentChunk, len(data) - 1} {
		changed := bytes.Clone(data)
		changed[pos] ^= 1
		if bytes.Equal(sum(changed, 4096), want) {
			t.Errorf("flipping byte %d leaves the sum unchanged", pos)
		}
	}
	// Trailing zeros are content too.
	if bytes.Equal(sum(append(bytes.Clone(data), 0), 4096), want) {
		t.Error("an appended zero byte leaves the sum unchanged")
	}
}

// TestContentSumRecord checks that a chunk summed elsewhere (as the
// parallel writers do) counts as the same bytes written, and that a
// record ends a partial chunk written before it.
func TestContentSumRecord(t *testing.T) {
	data := make([]byte, 2*contentChunk+100)
	rand.New(rand.NewSource(2)).Read(data)
	written := newContentSum()
	written.Write(data)
	recorded := newContentSum()
	for p := 0; p < len(data); p += contentChunk {
		b := data[p:min(p+contentChunk, len(data))]
		recorded.record(crc32.Checksum(b, castagnoli), len(b))
	}
	if !bytes.Equal(written.Sum(nil), recorded.Sum(nil)) {
		t.Error("recorded chunk sums differ from the written bytes' sum")
	}
	mixed := newContentSum()
	mixed.Write(data[:10])
	mixed.record(crc32.Checksum(data[10:20], castagnoli), 10)
	split := newContentSum()
	split.Write(data[:10])
	split.flush()
	split.Write(data[10:20])
	if !bytes.Equal(mixed.Sum(nil), split.Sum(nil)) {
		t.Error("a record does not end the partial chunk before it")
	}
}
