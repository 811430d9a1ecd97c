package zstdenc

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// inputs returns the round-trip test inputs: edge cases, synthetic data
// and (when present) real binaries from the Nix store.
func inputs(t testing.TB) map[string][]byte {
	r := rand.New(rand.NewSource(1))
	random := make([]byte, 200000)
	r.Read(random)
	var text bytes.Buffer
	for i := 0; text.Len() < 1<<20; i++ {
		fmt.Fprintf(&text, "line %d: /nix/store/%x-pkg-%d/lib/libfoo.so.%d\n", i, r.Int63(), i%97, i%13)
	}
	mixed := make([]byte, 300000)
	for i := range mixed {
		switch (i / 5000) % 3 {
		case 0:
			mixed[i] = byte(r.Intn(4))
		case 1:
			mixed[i] = 'a'
		default:
			mixed[i] = byte(r.Intn(256))
		}
	}
	in := map[string][]byte{
		"empty":   {},
		"one":     {'x'},
		"two":     {'x', 'y'},
		"short":   []byte("hello, hello, hello world"),
		"zeros":   make([]byte, 1<<20),
		"zeros1":  make([]byte, 131073),
		"random":  random,
		"text1M":  text.Bytes(),
		"text128": text.Bytes()[:128<<10],
		"mixed":   mixed,
		"rle3":    bytes.Repeat([]byte("abc"), 50000),
	}
	for _, p := range storeFiles(t, 4) {
		b, err := os.ReadFile(p)
		if err == nil {
			in["store:"+filepath.Base(p)] = b[:min(len(b), 1<<20)]
		}
	}
	return in
}

// storeFiles returns up to n regular files of 64 KiB to 4 MiB from
// /nix/store, in a stable order.
func storeFiles(t testing.TB, n int) []string {
	var out []string
	for _, pat := range []string{"/nix/store/*/lib/*", "/nix/store/*/bin/*", "/nix/store/*/*/*/*"} {
		paths, _ := filepath.Glob(pat)
		for _, p := range paths {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() > 64<<10 && st.Size() < 4<<20 {
				out = append(out, p)
				if len(out) == n {
					return out
				}
			}
		}
	}
	return out
}

func decodeGo(t testing.TB, frame []byte, size int) []byte {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out, err := d.DecodeAll(frame, nil)
	if err != nil {
		t.Fatalf("klauspost decode: %v", err)
	}
	return out
}

// prunedParams is a one-pass parse over rows with pruned searches, as
// the codec uses for zstd level 15's binary blocks of code and data.
var prunedParams = Params{Nice: 16, Passes: 1, Tail: 8, Rows: 8, LitFlat: 48, Prune: 128}

func TestRoundTrip(t *testing.T) {
	cli, _ := exec.LookPath("zstd")
	for _, enc := range []struct {
		name string
		p    Params
	}{
		{"level15", LevelParams(15)},
		{"level19", LevelParams(19)},
		{"pruned", prunedParams},
	} {
		e := NewEncoder(enc.p)
		for name, in := range inputs(t) {
			roundTrip(t, enc.name+"/"+name, e, cli, in)
		}
	}
	if cli == "" {
		t.Log("zstd CLI not found: C decoder oracle skipped")
	}
}

// TestPrune: pruning changes the parse of inputs with many matches
// (fewer searches), and the output stays within 2% of the full parse's.
func TestPrune(t *testing.T) {
	full := prunedParams
	full.Prune = 0
	ef, ep := NewEncoder(full), NewEncoder(prunedParams)
	changed := 0
	for name, in := range inputs(t) {
		a, b := ef.Compress(nil, in), ep.Compress(nil, in)
		if !bytes.Equal(a, b) {
			changed++
		}
		if len(in) > 1000 && float64(len(b)) > 1.02*float64(len(a)) {
			t.Errorf("%s: pruned %d bytes, full parse %d", name, len(b), len(a))
		}
	}
	if changed == 0 {
		t.Error("Prune changed no output")
	}
}

// roundTrip compresses in with e and checks the frame with klauspost's
// decoder and, when cli is not "", C zstd's.
func roundTrip(t *testing.T, name string, e *Encoder, cli string, in []byte) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		out := e.Compress([]byte("pre"), in)
		if string(out[:3]) != "pre" {
			t.Fatal("Compress did not append")
		}
		frame := out[3:]
		if got := decodeGo(t, frame, len(in)); !bytes.Equal(got, in) {
			t.Fatalf("klauspost round trip mismatch: %d bytes, want %d", len(got), len(in))
		}
		if again := e.Compress(nil, in); !bytes.Equal(again, frame) {
			t.Fatal("output differs between two calls")
		}
		if cli == "" {
			return
		}
		cmd := exec.Command(cli, "-d", "-c", "-q")
		cmd.Stdin = bytes.NewReader(frame)
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("zstd -d: %v", err)
		}
		if !bytes.Equal(got, in) {
			t.Fatalf("zstd -d round trip mismatch: %d bytes, want %d", len(got), len(in))
		}
		t.Logf("%d -> %d", len(in), len(frame))
	})
}

// BenchmarkBlocks compresses 128 KiB blocks of Nix store files (those
// listed in $ZSTDENC_SAMPLE, else a few found in /nix/store) with
// zstdenc at several levels and with klauspost/compress's best level,
// reporting MB/s and the compressed/input ratio.
func BenchmarkBlocks(b *testing.B) {
	blocks := sampleBlocks(b, 3)
	in := 0
	for _, bl := range blocks {
		in += len(bl)
	}
	run := func(b *testing.B, compress func(dst, src []byte) []byte) {
		b.SetBytes(int64(in))
		var out []byte
		total := 0
		for b.Loop() {
			total = 0
			for _, bl := range blocks {
				out = compress(out[:0], bl)
				total += min(len(out), len(bl))
			}
		}
		b.ReportMetric(float64(total)/float64(in), "ratio")
	}
	for _, level := range []int{15, 16} {
		b.Run(fmt.Sprintf("zstdenc-%d", level), func(b *testing.B) {
			e := NewEncoder(LevelParams(level))
			run(b, e.Compress)
		})
	}
	b.Run("klauspost-best", func(b *testing.B) {
		kp := newKP()
		run(b, func(dst, src []byte) []byte { return kp.EncodeAll(src, dst) })
	})
}

// TestSmallerThanKlauspost checks the point of this package: the
// two-pass levels write less than klauspost's best level on every
// input, text and store files included.
func TestSmallerThanKlauspost(t *testing.T) {
	kp := newKP()
	e := NewEncoder(LevelParams(16))
	in := inputs(t)
	var names []string
	for name := range in {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if len(in[name]) < 64<<10 {
			continue
		}
		got, want := len(e.Compress(nil, in[name])), len(kp.EncodeAll(in[name], nil))
		t.Logf("%s: %d bytes, klauspost best %d", name, got, want)
		if got > want {
			t.Errorf("%s: %d bytes, klauspost best %d", name, got, want)
		}
	}
}
