package codec

import (
	"bytes"
	stdzlib "compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os/exec"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/internal/zstdenc"
	"github.com/klauspost/compress/zstd"
)

func samples() map[string][]byte {
	r := rand.New(rand.NewSource(1))
	random := make([]byte, 70000)
	r.Read(random)
	text := bytes.Repeat([]byte("the quick brown fox jumps over /nix/store/abc-def\n"), 3000)
	// Binary, compressible: records of a counter, its square and code
	// bytes, like a table in an executable.
	var bin []byte
	for i := 0; len(bin) < 100000; i++ {
		bin = binary.LittleEndian.AppendUint32(bin, uint32(i))
		bin = binary.LittleEndian.AppendUint32(bin, uint32(i*i%7919))
		bin = append(bin, 0x48, 0x89, byte(i%5), 0, 0xc3)
	}
	// Binary with little variety (under 4 bits per byte): a table of
	// small counters padded with zeros.
	var sparse []byte
	for i := 0; len(sparse) < 100000; i++ {
		sparse = binary.LittleEndian.AppendUint64(sparse, uint64(i%3000))
		sparse = append(sparse, make([]byte, 8)...)
	}
	// About 65% text: strings between binary fields, like a .mo file.
	var mixed []byte
	for i := 0; len(mixed) < 100000; i++ {
		mixed = fmt.Appendf(mixed, "msgid %d: file not found\n", i%977)
		mixed = binary.LittleEndian.AppendUint64(mixed, uint64(i)*0x9E3779B97F4A7C15)
		mixed = binary.LittleEndian.AppendUint64(mixed, uint64(i%13)<<40)
	}
	// Already compressed data repeated, as in a package holding two
	// copies of one archive: random bytes, then some of them again.
	packed := append(random[:60000:60000], random[1000:40000]...)
	// Text with variety: words drawn at random, lines of them.
	words := strings.Fields("the store path of a closure holds every file it references " +
		"nix build derivation output hash narinfo registration squashfs erofs image block")
	var prose []byte
	for i := 0; len(prose) < 100000; i++ {
		prose = append(prose, words[r.Intn(len(words))]...)
		prose = append(prose, " \n"[min(r.Intn(12), 1)])
	}
	return map[string][]byte{
		"packed": packed,
		"prose":  prose,
		"empty":  {},
		"one":    {'x'},
		"zeros":  make([]byte, 131072),
		"random": random,
		"text":   text,
		"binary": bin,
		"sparse": sparse,
		"mixed":  mixed,
		"short":  []byte("hello, world"),
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range Specs() {
		levels := []int{0}
		if s.DefaultLevel != 0 {
			levels = []int{s.MinLevel, s.DefaultLevel, s.MaxLevel}
		}
		for _, level := range levels {
			c, err := New(s.Name, level)
			if err != nil {
				t.Fatalf("New(%s, %d): %v", s.Name, level, err)
			}
			for name, in := range samples() {
				if s.Name == "xz" || s.Name == "lzma" {
					if name == "random" && level != 0 {
						continue
					}
				}
				prefix := []byte("prefix")
				out, err := c.Compress(append([]byte(nil), prefix...), in)
				if err != nil {
					t.Fatalf("%s/%d %s: compress: %v", s.Name, level, name, err)
				}
				if !bytes.HasPrefix(out, prefix) {
					t.Fatalf("%s/%d %s: compress did not append", s.Name, level, name)
				}
				got, err := c.Decompress([]byte("p"), out[len(prefix):], len(in))
				if err != nil {
					t.Fatalf("%s/%d %s: decompress: %v", s.Name, level, name, err)
				}
				if !bytes.Equal(got[1:], in) || got[0] != 'p' {
					t.Fatalf("%s/%d %s: round trip mismatch (%d bytes, want %d)", s.Name, level, name, len(got)-1, len(in))
				}
				if len(in) > 0 {
					if _, err := c.Decompress(nil, out[len(prefix):], len(in)-1); !errors.Is(err, ErrTooLarge) {
						t.Errorf("%s/%d %s: limit %d: err = %v, want ErrTooLarge", s.Name, level, name, len(in)-1, err)
					}
				}
			}
		}
	}
}

// TestZlibIsStandard checks our zlib output against the standard library's
// decoder, the format the kernel's squashfs gzip decompressor reads.
func TestZlibIsStandard(t *testing.T) {
	c, err := New("zlib", 9)
	if err != nil {
		t.Fatal(err)
	}
	in := samples()["text"]
	out, _ := c.Compress(nil, in)
	r, err := stdzlib.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, in) {
		t.Fatalf("standard zlib reader: %v, equal=%v", err, bytes.Equal(got, in))
	}
}

// TestZstdIsStandard checks the zstd frames of the levels zstdenc
// writes against C zstd's decoder (the kernel's squashfs decompressor is
// the same code) and that they are the same bytes on every call.
func TestZstdIsStandard(t *testing.T) {
	cli, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("zstd CLI not installed (scripts/deps.sh installs it): C decoder oracle skipped")
	}
	var codecs []Codec
	for _, level := range []int{15, 16, 22} {
		c, err := New("zstd", level)
		if err != nil {
			t.Fatal(err)
		}
		codecs = append(codecs, c)
	}
	for _, c := range codecs {
		level := fmt.Sprintf("%d", c.Level())
		for name, in := range samples() {
			out, _ := c.Compress(nil, in)
			again, _ := c.Compress(nil, in)
			if !bytes.Equal(out, again) {
				t.Errorf("level %s %s: output differs between calls", level, name)
			}
			cmd := exec.Command(cli, "-d", "-c", "-q")
			cmd.Stdin = bytes.NewReader(out)
			got, err := cmd.Output()
			if err != nil || !bytes.Equal(got, in) {
				t.Errorf("level %s %s: zstd -d: %v, equal=%v", level, name, err, bytes.Equal(got, in))
			}
		}
	}
}

// TestZstdPerBlock checks which encoder compresses each kind of block
// at each zstd level (see zstdPlanFor): the output must be that
// encoder's, byte for byte, and decompress to the input.
func TestZstdPerBlock(t *testing.T) {
	in := samples()
	kinds := []struct {
		name   string
		share  int     // textShareCounts within [share, share+10)
		lo, hi float64 // entropy in bits per byte within [lo, hi)
	}{
		{"binary", 10, richBits, 7}, {"sparse", 0, 0, richBits}, {"mixed", 60, 0, 7},
		{"prose", 100, 0, 7}, {"packed", 30, 7, 8},
	}
	// want[level][kind]: the parameters expected, nil for klauspost.
	want := map[int]map[string]*zstdenc.Params{
		9:  {},
		10: {"binary": &lazyParams, "sparse": &lazyParams, "mixed": &rowsParams, "packed": &lazyParams},
		14: {"binary": &lazyParams, "sparse": &lazyParams, "mixed": &rowsParams, "packed": &lazyParams},
		15: {"binary": &prunedParams, "sparse": &lazyParams, "mixed": &rowsParams, "packed": &lazyParams},
		16: {"binary": &rowsParams, "sparse": &rowsParams, "mixed": &treeParams, "packed": &lazyParams},
		17: {"binary": &treeParams, "sparse": &treeParams, "mixed": &treeParams, "packed": &lazyParams},
		18: {"binary": &treeParams, "sparse": &treeParams, "mixed": &treeParams, "prose": &deepParams, "packed": &lazyParams},
		19: {"binary": &bestParams, "sparse": &bestParams, "mixed": &bestParams, "prose": &bestParams, "packed": &lazyParams},
		22: {"binary": &bestParams, "sparse": &bestParams, "mixed": &bestParams, "prose": &bestParams, "packed": &lazyParams},
	}
	for _, k := range kinds {
		var h [256]uint32
		for _, b := range in[k.name] {
			h[b]++
		}
		if got := textShareCounts(&h, len(in[k.name])); got < k.share || got >= k.share+10 {
			t.Errorf("%s: text share %d%%, want %d-%d%%", k.name, got, k.share, k.share+9)
		}
		if e := zstdenc.Entropy(&h, len(in[k.name])); e < k.lo || e >= k.hi {
			t.Errorf("%s: entropy %.2f bits per byte, want %.1f-%.1f", k.name, e, k.lo, k.hi)
		}
	}
	for level, plan := range want {
		c, err := New("zstd", level)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kinds {
			src := in[k.name]
			out, err := c.Compress(nil, src)
			if err != nil {
				t.Fatal(err)
			}
			var expect []byte
			who := "klauspost"
			if p := plan[k.name]; p != nil {
				expect = zstdenc.NewEncoder(*p).Compress(nil, src)
				who = fmt.Sprintf("zstdenc %+v", *p)
			} else {
				expect = kp.EncodeAll(src, nil)
			}
			if !bytes.Equal(out, expect) {
				t.Errorf("level %d %s: output is not %s's", level, k.name, who)
			}
			if got, err := c.Decompress(nil, out, len(src)); err != nil || !bytes.Equal(got, src) {
				t.Errorf("level %d %s: round trip: %v, equal=%v", level, k.name, err, bytes.Equal(got, src))
			}
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		spec  string
		name  string
		level int
		ok    bool
	}{
		{"zstd", "zstd", 15, true},
		{"zstd,3", "zstd", 3, true},
		{"lz4hc,level=12", "lz4hc", 12, true},
		{"lz4hc,9", "lz4hc", 9, true},
		{"zlib,0", "", 0, false},
		{"zlib,10", "", 0, false},
		{"lz4,3", "", 0, false},
		{"bogus", "", 0, false},
		{"zstd,x", "", 0, false},
	}
	for _, tt := range tests {
		c, err := Parse(tt.spec)
		if (err == nil) != tt.ok {
			t.Errorf("Parse(%q): err = %v, want ok=%v", tt.spec, err, tt.ok)
			continue
		}
		if err == nil && (c.Name() != tt.name || c.Level() != tt.level) {
			t.Errorf("Parse(%q) = %s/%d, want %s/%d", tt.spec, c.Name(), c.Level(), tt.name, tt.level)
		}
	}
}

// FuzzDecompress feeds arbitrary bytes to every decompressor: they must
// return an error or at most limit bytes, never panic.
func FuzzDecompress(f *testing.F) {
	for _, s := range Specs() {
		c, _ := New(s.Name, 0)
		for _, in := range samples() {
			if len(in) > 4096 {
				in = in[:4096]
			}
			out, _ := c.Compress(nil, in)
			f.Add(s.Name, out)
		}
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		c, err := New(name, 0)
		if err != nil {
			return
		}
		const limit = 1 << 16
		out, err := c.Decompress(nil, data, limit)
		if err == nil && len(out) > limit {
			t.Fatalf("%s: %d bytes past limit %d", name, len(out), limit)
		}
	})
}
