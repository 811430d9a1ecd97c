package zstdenc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// sampleBlocks returns full 128 KiB blocks (at most perFile per file) of
// the files listed, one per line, in the file $ZSTDENC_SAMPLE; without it,
// of a few files from /nix/store.
func sampleBlocks(tb testing.TB, perFile int) [][]byte {
	var paths []string
	if list := os.Getenv("ZSTDENC_SAMPLE"); list != "" {
		f, err := os.Open(list)
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			paths = append(paths, sc.Text())
		}
	} else {
		paths = storeFiles(tb, 8)
	}
	var blocks [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for i := 0; i < perFile && (i+1)*blockMax <= len(b); i++ {
			blocks = append(blocks, b[i*blockMax:(i+1)*blockMax])
		}
	}
	if len(blocks) == 0 {
		tb.Skip("no sample files (set ZSTDENC_SAMPLE to a list of paths)")
	}
	return blocks
}

// TestCompareSample prints our, klauspost's best and C zstd -15's total
// sizes on the sample blocks. It is a measurement, run on request:
// ZSTDENC_COMPARE=1.
func TestCompareSample(t *testing.T) {
	if os.Getenv("ZSTDENC_COMPARE") == "" {
		t.Skip("set ZSTDENC_COMPARE=1 to compare sizes on sample blocks")
	}
	blocks := sampleBlocks(t, 3)
	in := 0
	for _, b := range blocks {
		in += len(b)
	}
	p := DefaultParams
	if v := os.Getenv("ZSTDENC_LEVEL"); v != "" {
		l, _ := strconv.Atoi(v)
		p = LevelParams(l)
	}
	if v := os.Getenv("ZSTDENC_PARAMS"); v != "" {
		if _, err := fmt.Sscanf(v, "%d,%d,%d,%t,%d,%t,%t,%d,%d,%t", &p.Depth, &p.Nice, &p.Passes, &p.Greedy, &p.Tail, &p.NoSkipInsert, &p.NoHash3, &p.Rows, &p.LitFlat, &p.Predefined); err != nil {
			t.Fatal(err)
		}
	}
	// measure returns the total compressed size of the blocks (each at most
	// its input size, as a block stored raw) and the best CPU time of two
	// runs.
	measure := func(compress func(dst, src []byte) []byte) (int, time.Duration) {
		var out []byte
		size, best := 0, time.Duration(1<<62)
		for range 2 {
			t0 := cpuNow()
			size = 0
			for _, b := range blocks {
				out = compress(out[:0], b)
				size += min(len(out), len(b))
			}
			best = min(best, cpuNow()-t0)
		}
		return size, best
	}
	ours, dOurs := measure(NewEncoder(p).Compress)
	kp := newKP()
	kps, dKp := measure(func(dst, src []byte) []byte { return kp.EncodeAll(src, dst) })
	t.Logf("%d blocks, %d bytes", len(blocks), in)
	t.Logf("ours      %d (%.4f) %.1f MB/s (CPU time)", ours, float64(ours)/float64(in), float64(in)/dOurs.Seconds()/1e6)
	t.Logf("klauspost %d (%.4f) %.1f MB/s (CPU time)", kps, float64(kps)/float64(in), float64(in)/dKp.Seconds()/1e6)
	if cli, err := exec.LookPath("zstd"); err == nil && os.Getenv("ZSTDENC_NOC") == "" {
		cs := 0
		t1 := time.Now()
		// A file argument (not stdin) gives zstd the source size, so it
		// picks the parameters it uses for 128 KiB inputs, as
		// gensquashfs's one-shot ZSTD_compress does.
		tmp := t.TempDir() + "/block"
		for _, b := range blocks {
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(cli, "-15", "-c", "-q", "--no-check", tmp)
			o, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			cs += min(len(o), len(b))
		}
		t.Logf("C zstd-15 %d (%.4f) %v; ours/C %.4f, klauspost/C %.4f", cs, float64(cs)/float64(in), time.Since(t1), float64(ours)/float64(cs), float64(kps)/float64(cs))
	}
}

// cpuNow returns the process's user+system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newKP() *zstd.Encoder {
	kp, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1))
	return kp
}
