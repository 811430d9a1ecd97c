package verify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/closurefs/closurefs/closure"
)

// BenchmarkCheck verifies a generated store of 64 paths (about 32 MiB of
// files, sizes from 1 KiB to 1 MiB) with 1 job and with all CPUs.
func BenchmarkCheck(b *testing.B) {
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	var infos []closure.PathInfo
	var total int64
	for i := 0; i < 64; i++ {
		base := fmt.Sprintf("%032d-bench-%d", i, i)
		for j := 0; j < 8; j++ {
			data := make([]byte, 1024<<rng.IntN(11))
			for k := range data {
				data[k] = byte(rng.Uint32())
			}
			p := filepath.Join(dir, base, fmt.Sprintf("d%d", j%3), fmt.Sprintf("f%d", j))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, data, 0o444); err != nil {
				b.Fatal(err)
			}
			total += int64(len(data))
		}
		h, n, err := closure.HashNAR(closure.DirFS(dir), base)
		if err != nil {
			b.Fatal(err)
		}
		infos = append(infos, closure.PathInfo{Path: "/nix/store/" + base, NarHash: h, NarSize: n})
	}
	for _, jobs := range []int{1, 0} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				rep, err := Check(context.Background(), closure.DirFS(dir), infos, Options{Jobs: jobs})
				if err != nil || rep.Failed() {
					b.Fatalf("%v %+v", err, rep)
				}
			}
		})
	}
}
