package lz4

import (
	"bufio"
	"os"
	"syscall"
	"testing"
)

// corpus reads the files listed, one path a line, in the file named by
// $LZ4_CORPUS (for benchmarks on real data; see BenchmarkCorpusLimit).
func corpus(tb testing.TB) [][]byte {
	list := os.Getenv("LZ4_CORPUS")
	if list == "" {
		tb.Skip("set LZ4_CORPUS to a file listing input files")
	}
	f, err := os.Open(list)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var files [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		b, err := os.ReadFile(sc.Text())
		if err != nil {
			continue
		}
		files = append(files, b)
	}
	return files
}

// BenchmarkCorpusLimit encodes each corpus file as the erofs writer does:
// EncodeLimit over at most 1 MiB at a time into 4 KiB (or $LZ4_LIMIT)
// blocks, reporting the total output.
func BenchmarkCorpusLimit(b *testing.B) {
	files := corpus(b)
	limit := 4096
	if v := os.Getenv("LZ4_LIMIT"); v != "" {
		limit = atoi(v)
	}
	level := 9
	if v := os.Getenv("LZ4_LEVEL"); v != "" {
		level = atoi(v)
	}
	var total int64
	for _, f := range files {
		total += int64(len(f))
	}
	b.SetBytes(total)
	e := Level(level)
	if v := os.Getenv("LZ4_DEPTH"); v != "" {
		e.Depth = atoi(v)
	}
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	dst := make([]byte, 0, limit+64)
	var out, blocks int
	for b.Loop() {
		out, blocks = 0, 0
		for _, f := range files {
			for pos := 0; pos < len(f); {
				src := f[pos:min(len(f), pos+1<<20)]
				blk, used := e.EncodeLimit(dst[:0], src, limit)
				if used == 0 {
					b.Fatal("no progress")
				}
				out += len(blk)
				blocks++
				pos += used
			}
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N)/float64(total), "cpu-ns/B")
	b.ReportMetric(float64(out), "out-bytes")
	b.ReportMetric(float64(blocks), "blocks")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(total), "ns/B")
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
