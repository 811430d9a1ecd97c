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
	"testing"

	"github.com/closurefs/closurefs/internal/zstdenc"
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
	return map[string][]byte{
		"packed": packed,
		"empty":  {},
		"one":    {'x'},
		"zeros":  make([]byte, 131072),
		"random": random,
		"text":   text,
		"binary": bin,
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

// TestZstdPerBlock checks the encoder choice of levels 10-15 by the
// share of text in a block: zstdenc's lazy parser for binary and
// near-random data, its one-pass optimal parser for mixed data,
// klauspost/compress for text (and for every block below level 10).
func TestZstdPerBlock(t *testing.T) {
	in := samples()
	lazy := zstdenc.NewEncoder(zstdenc.LevelParams(15))
	mid := zstdenc.NewEncoder(midParams)
	tests := []struct {
		name  string
		share int // textShare within [share, share+10)
		enc   map[int]*zstdenc.Encoder
	}{
		{"binary", 10, map[int]*zstdenc.Encoder{10: lazy, 15: lazy}},
		{"mixed", 60, map[int]*zstdenc.Encoder{10: mid, 15: mid}},
		{"text", 100, nil},
		{"packed", 30, map[int]*zstdenc.Encoder{10: lazy, 15: lazy}},
	}
	for _, tt := range tests {
		if got := textShare(in[tt.name]); got < tt.share || got >= tt.share+10 {
			t.Errorf("%s: textShare %d%%, want %d-%d%%", tt.name, got, tt.share, tt.share+9)
		}
		for _, level := range []int{9, 10, 15} {
			c, err := New("zstd", level)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Compress(nil, in[tt.name])
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range []*zstdenc.Encoder{lazy, mid} {
				if got, want := bytes.Equal(out, e.Compress(nil, in[tt.name])), tt.enc[level] == e; got != want {
					t.Errorf("level %d %s: output of zstdenc %v is %v, want %v", level, tt.name, e == mid, got, want)
				}
			}
			if got, err := c.Decompress(nil, out, len(in[tt.name])); err != nil || !bytes.Equal(got, in[tt.name]) {
				t.Errorf("level %d %s: round trip: %v, equal=%v", level, tt.name, err, bytes.Equal(got, in[tt.name]))
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
