package closure

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchClosure returns a synthetic closure of n paths, each referring to up
// to four earlier ones.
func benchClosure(n int) *Closure {
	r := rand.New(rand.NewPCG(1, 2))
	c := &Closure{StoreDir: DefaultStoreDir}
	for i := 0; i < n; i++ {
		var h [20]byte
		for j := range h {
			h[j] = byte(r.Uint32())
		}
		p := PathInfo{Path: fmt.Sprintf("%s/%s-pkg-%d", DefaultStoreDir, EncodeBase32(h[:]), i), NarSize: r.Uint64N(1 << 30)}
		for j := 0; j < 4 && i > 0; j++ {
			p.References = append(p.References, c.Paths[r.IntN(i)].Path)
		}
		c.Paths = append(c.Paths, p)
	}
	return newClosure(c.StoreDir, nil, func() map[string]*PathInfo {
		m := map[string]*PathInfo{}
		for i := range c.Paths {
			m[c.Paths[i].Path] = &c.Paths[i]
		}
		return m
	}())
}

func BenchmarkWriteRegistration(b *testing.B) {
	c := benchClosure(5000)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteRegistration(io.Discard, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRegistration(b *testing.B) {
	var buf bytes.Buffer
	WriteRegistration(&buf, benchClosure(5000))
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRegistration(bytes.NewReader(buf.Bytes()), "reg", DefaultStoreDir); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGraphResolve(b *testing.B) {
	c := benchClosure(5000)
	g, err := NewGraph(DefaultStoreDir, "bench", c.Paths)
	if err != nil {
		b.Fatal(err)
	}
	root := c.Paths[len(c.Paths)-1].Path
	for b.Loop() {
		if _, err := g.Resolve([]string{root}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashNAR(b *testing.B) {
	dir := b.TempDir()
	names := makeTree(b, dir)
	fsys := DirFS(dir)
	var total int64
	for _, n := range names {
		_, size, err := HashNAR(fsys, n)
		if err != nil {
			b.Fatal(err)
		}
		total += int64(size)
	}
	for _, jobs := range []int{1, DefaultJobs()} {
		b.Run(fmt.Sprintf("j%d", jobs), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				if _, err := HashPaths(fsys, names, HashOptions{Jobs: jobs}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRefScanner(b *testing.B) {
	cands := map[string]string{}
	for _, p := range benchClosure(1000).Paths {
		sp, _ := ParseStorePath(DefaultStoreDir, p.Path)
		cands[sp.Hash] = p.Path
	}
	// Text with store paths sprinkled in and long runs of base-32 letters.
	var sb strings.Builder
	for sb.Len() < 8<<20 {
		sb.WriteString("the quick brown fox jumps over the lazy dog 0123456789abcdfghijklmnpqrsvwxyz ")
		sb.WriteString("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x\n")
	}
	data := []byte(sb.String())
	s := newRefScanner(cands)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		s.reset()
		s.Write(data)
	}
}
