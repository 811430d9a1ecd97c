package zstdenc

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// FuzzRoundTrip compresses arbitrary data (repeated to reach multi-block
// sizes when it asks) with the lazy (level 15), the two-pass and the
// pruned one-pass parser and checks that klauspost's decoder returns it.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("a"), uint8(0))
	f.Add([]byte("abcabcabcabd"), uint8(3))
	f.Add(bytes.Repeat([]byte{0}, 300), uint8(1))
	f.Add([]byte("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12/bin/hello"), uint8(200))
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	encs := []*Encoder{NewEncoder(LevelParams(15)), NewEncoder(DefaultParams), NewEncoder(prunedParams)}
	f.Fuzz(func(t *testing.T, data []byte, rep uint8) {
		in := data
		if rep > 0 && len(data) > 0 {
			// Repeat with a varying byte so matches reach back across
			// block boundaries.
			for len(in) < int(rep)*1024 {
				in = append(in, data...)
				in = append(in, byte(len(in)))
			}
		}
		for i, e := range encs {
			out := e.Compress(nil, in)
			got, err := d.DecodeAll(out, nil)
			if err != nil {
				t.Fatalf("encoder %d: decode: %v", i, err)
			}
			if !bytes.Equal(got, in) {
				t.Fatalf("encoder %d: round trip mismatch: %d bytes, want %d", i, len(got), len(in))
			}
		}
	})
}
