package zstdenc

import "testing"

func BenchmarkFindOnly(b *testing.B) {
	blocks := sampleBlocks(b, 3)
	e := NewEncoder(DefaultParams)
	n := 0
	for _, bl := range blocks {
		n += len(bl)
	}
	b.SetBytes(int64(n))
	for b.Loop() {
		for _, bl := range blocks {
			e.reset(len(bl))
			e.blockEnd = len(bl)
			for p := range bl {
				e.matches = e.matches[:0]
				e.search(bl, p, false)
			}
		}
	}
}

func BenchmarkKlauspost(b *testing.B) {
	blocks := sampleBlocks(b, 3)
	n := 0
	for _, bl := range blocks {
		n += len(bl)
	}
	b.SetBytes(int64(n))
	kp := newKP()
	var out []byte
	for b.Loop() {
		for _, bl := range blocks {
			out = kp.EncodeAll(bl, out[:0])
		}
	}
}
