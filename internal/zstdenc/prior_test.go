package zstdenc

import (
	"fmt"
	"os"
	"testing"
)

func TestPrior(t *testing.T) {
	if os.Getenv("ZSTDENC_PRIOR") == "" {
		t.Skip()
	}
	blocks := sampleBlocks(t, 3)
	e := NewEncoder(Params{Depth: 16, Nice: 64, Passes: 3, Tail: 8})
	var llH [36]uint64
	var mlH [53]uint64
	var ofH [32]uint64
	for _, b := range blocks {
		e.Compress(nil, b)
		for _, s := range e.seqs {
			llH[llCode(s.litLen)]++
			mlH[mlCode(s.matchLen)]++
			ofH[ofCode(s.offVal)]++
		}
	}
	fmt.Println("ll", llH)
	fmt.Println("ml", mlH)
	fmt.Println("of", ofH)
}
