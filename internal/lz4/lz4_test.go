package lz4

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	plz4 "github.com/pierrec/lz4/v4"
)

func samples(t testing.TB) [][]byte {
	var out [][]byte
	r := rand.New(rand.NewPCG(1, 2))
	rnd := make([]byte, 20000)
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	out = append(out, nil, []byte("a"), []byte("hello, hello, hello, hello!"), rnd, make([]byte, 100000))
	var text bytes.Buffer
	for i := 0; text.Len() < 200000; i++ {
		text.WriteString("some text with repeats ")
		text.WriteByte(byte('a' + i%26))
		text.WriteByte(byte(r.Uint32()))
	}
	out = append(out, text.Bytes())
	// Real binaries and text, if present.
	for _, p := range []string{"/usr/local/go/bin/go", "/usr/share/common-licenses/GPL-3", "/bin/bash"} {
		if b, err := os.ReadFile(p); err == nil {
			for off := 0; off+65536 <= len(b) && off < 4<<20; off += 1 << 20 {
				out = append(out, b[off:off+65536])
			}
			out = append(out, b[:min(len(b), 16384)])
		}
	}
	_ = filepath.Join
	return out
}

// TestRoundTrip decodes every block with pierrec/lz4, an independent
// decoder that enforces the block format's end rules.
func TestRoundTrip(t *testing.T) {
	for _, lvl := range []int{1, 9, 12} {
		e := Level(lvl)
		for i, s := range samples(t) {
			blk := e.Encode(nil, s)
			out := make([]byte, len(s)+16)
			n, err := plz4.UncompressBlock(blk, out)
			if len(s) == 0 {
				continue
			}
			if err != nil || !bytes.Equal(out[:n], s) {
				t.Fatalf("level %d sample %d (%d bytes): round trip failed: %v (n=%d)", lvl, i, len(s), err, n)
			}
		}
	}
}

// TestSmallerThanGreedyHC compares block sizes with pierrec/lz4's HC
// encoder at its highest level on the samples.
func TestSmallerThanGreedyHC(t *testing.T) {
	var ours, theirs int
	for _, s := range samples(t) {
		if len(s) < 1000 {
			continue
		}
		ours += len(Level(9).Encode(nil, s))
		dst := make([]byte, plz4.CompressBlockBound(len(s)))
		c := plz4.CompressorHC{Level: plz4.Level9}
		n, _ := c.CompressBlock(s, dst)
		if n == 0 {
			n = len(s) + len(s)/255 + 16
		}
		theirs += n
	}
	t.Logf("optimal parse: %d bytes, pierrec HC 9: %d bytes (%.2f%%)", ours, theirs, 100*float64(ours)/float64(theirs))
	if ours > theirs {
		t.Errorf("optimal parse larger than greedy HC: %d > %d", ours, theirs)
	}
}

func BenchmarkEncode(b *testing.B) {
	s := samples(b)
	var total int64
	for _, x := range s {
		total += int64(len(x))
	}
	b.SetBytes(total)
	e := Level(9)
	var dst []byte
	for b.Loop() {
		for _, x := range s {
			dst = e.Encode(dst[:0], x)
		}
	}
}

// TestEncodeLimit checks the destSize mode: blocks within the limit that
// decode (with pierrec/lz4) to the prefix they claim, for the lazy and
// the optimal encoders.
func TestEncodeLimit(t *testing.T) {
	for _, lvl := range []int{9, 12} {
		for i, s := range samples(t) {
			for _, limit := range []int{20, 100, 4096, 65536} {
				e := Level(lvl)
				blk, used := e.EncodeLimit(nil, s, limit)
				if len(blk) > limit {
					t.Fatalf("level %d sample %d limit %d: block of %d bytes", lvl, i, limit, len(blk))
				}
				if used > len(s) || (used < len(s) && len(blk) < limit-300) {
					t.Errorf("level %d sample %d limit %d: used %d of %d with a %d-byte block", lvl, i, limit, used, len(s), len(blk))
				}
				out := make([]byte, used+16)
				n, err := plz4.UncompressBlock(blk, out)
				if used == 0 {
					continue
				}
				if err != nil || !bytes.Equal(out[:n], s[:used]) {
					t.Fatalf("level %d sample %d limit %d: round trip of %d bytes failed: %v (n=%d)", lvl, i, limit, used, err, n)
				}
			}
		}
	}
}

// checkBlock decodes blk with pierrec/lz4 and checks it yields want, and
// that it obeys the block format's end rules: the last 5 bytes are
// literals and the last match starts at least 12 bytes before the end.
func checkBlock(t testing.TB, blk, want []byte) {
	t.Helper()
	out := make([]byte, len(want)+16)
	n, err := plz4.UncompressBlock(blk, out)
	if len(want) > 0 && (err != nil || !bytes.Equal(out[:n], want)) {
		t.Fatalf("block of %d bytes does not decode to its %d input bytes: %v (got %d)", len(blk), len(want), err, n)
	}
	// Walk the sequences.
	ip, op, lastMatch := 0, 0, -1
	length := func(v int) int {
		if v == 15 {
			for ip < len(blk) {
				b := blk[ip]
				ip++
				v += int(b)
				if b != 255 {
					break
				}
			}
		}
		return v
	}
	for {
		if ip >= len(blk) {
			t.Fatalf("block of %d bytes ends without a final literal run", len(blk))
		}
		tok := blk[ip]
		ip++
		ll := length(int(tok >> 4))
		ip += ll
		op += ll
		if ip == len(blk) {
			if lastMatch >= 0 && (ll < lastLits || lastMatch+mfLimit > op) {
				t.Fatalf("end rules broken: final run of %d literals, last match at %d of %d bytes", ll, lastMatch, op)
			}
			return
		}
		ip += 2
		lastMatch = op
		op += length(int(tok&15)) + minMatch
	}
}

func TestFitLiterals(t *testing.T) {
	for room := 0; room < 5000; room++ {
		want := 0
		for k := 0; 1+litExtLen(k)+k <= room; k++ {
			want = k
		}
		if got := fitLiterals(room); got != want {
			t.Fatalf("fitLiterals(%d) = %d, want %d", room, got, want)
		}
	}
}

// patterns are inputs on which a naive encoder does quadratic work.
func patterns() map[string][]byte {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 1 << 20
	zeros := make([]byte, n)
	abc := bytes.Repeat([]byte("abc"), n/3)
	rnd := make([]byte, n)
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	// 1000-byte records that differ in a counter.
	var rec []byte
	for i := 0; len(rec) < n; i++ {
		rec = append(rec, rnd[:996]...)
		rec = append(rec, byte(i), byte(i>>8), 0, 0)
	}
	// Runs of zeros between random bytes.
	var runs []byte
	for i := 0; len(runs) < n; i++ {
		runs = append(runs, make([]byte, 1+r.IntN(5000))...)
		runs = append(runs, rnd[i:i+1+r.IntN(20)]...)
	}
	return map[string][]byte{"zeros": zeros, "abc": abc, "random": rnd, "records": rec[:n], "runs": runs[:n]}
}

// TestEncodeLimitWork encodes inputs as the erofs writer does (blocks
// of at most limit bytes from what remains of the input) and checks the
// encoder's work, counted in chain steps, inserted positions and
// compared words, is a small multiple of the input: encoding the whole
// remaining input for each block, as the encoder once did, is not.
func TestEncodeLimitWork(t *testing.T) {
	for name, src := range patterns() {
		for _, lvl := range []int{9, 12} {
			for _, limit := range []int{4096, 65536} {
				e := Level(lvl)
				var dst []byte
				blocks := 0
				for pos := 0; pos < len(src); blocks++ {
					var used int
					dst, used = e.EncodeLimit(dst[:0], src[pos:], limit)
					if len(dst) > limit || used == 0 {
						t.Fatalf("%s level %d limit %d at %d: %d-byte block for %d bytes", name, lvl, limit, pos, len(dst), used)
					}
					checkBlock(t, dst, src[pos:pos+used])
					pos += used
				}
				t.Logf("%s level %d limit %d: %d blocks, work %.2f per byte", name, lvl, limit, blocks, float64(e.work)/float64(len(src)))
				if e.work > 16*len(src) {
					t.Errorf("%s level %d limit %d: work %d for %d bytes", name, lvl, limit, e.work, len(src))
				}
			}
		}
	}
}

// FuzzRoundTrip checks that Encode and EncodeLimit give blocks that
// decode to their input (or the prefix EncodeLimit reports) and obey
// the end rules.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello, hello, hello, hello!"), uint16(20))
	f.Add(bytes.Repeat([]byte{0}, 3000), uint16(40))
	f.Add(bytes.Repeat([]byte("abcdefgh12"), 500), uint16(100))
	for _, s := range samples(f) {
		if len(s) <= 20000 {
			f.Add(s, uint16(4096))
		}
	}
	encs := []*Encoder{{Depth: 1}, {Depth: 16}, {Depth: 4, Optimal: true}}
	f.Fuzz(func(t *testing.T, src []byte, limit uint16) {
		for _, e := range encs {
			whole := e.Encode(nil, src)
			checkBlock(t, whole, src)
			if cut, used := Truncate(whole, src, int(limit)); used > 0 {
				if len(cut) > int(limit) || used > len(src) {
					t.Fatalf("Truncate(%d bytes, %d): %d-byte block for %d bytes", len(src), limit, len(cut), used)
				}
				checkBlock(t, cut, src[:used])
			}
			blk, used := e.EncodeLimit(nil, src, int(limit))
			if len(blk) > int(limit) || used > len(src) {
				t.Fatalf("EncodeLimit(%d bytes, %d): %d-byte block for %d bytes", len(src), limit, len(blk), used)
			}
			if used > 0 {
				checkBlock(t, blk, src[:used])
			}
		}
	})
}

// TestCommonLen compares the word-wise match extensions with byte loops.
func TestCommonLen(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	src := make([]byte, 300)
	for it := 0; it < 20000; it++ {
		for i := range src {
			src[i] = byte(r.IntN(2))
		}
		j := r.IntN(len(src))
		i := j + 1 + r.IntN(len(src)-j)
		if i == len(src) {
			i--
		}
		if i <= j {
			continue
		}
		want := 0
		for i+want < len(src) && src[j+want] == src[i+want] {
			want++
		}
		if got := commonLen(src[j:], src[i:]); got != want {
			t.Fatalf("commonLen(src[%d:], src[%d:]) = %d, want %d", j, i, got, want)
		}
		max := r.IntN(j + 1)
		want = 0
		for want < max && src[i-want-1] == src[j-want-1] {
			want++
		}
		if got := commonLenBack(src, i, j, max); got != want {
			t.Fatalf("commonLenBack(%d, %d, %d) = %d, want %d", i, j, max, got, want)
		}
	}
}

// TestDeterministic checks an Encoder's output does not depend on the
// blocks it encoded before (the erofs writer pools Encoders across
// goroutines, and images must not depend on -j).
func TestDeterministic(t *testing.T) {
	ss := samples(t)
	used := Level(9)
	for _, s := range ss {
		used.Encode(nil, s)
	}
	for i, s := range ss {
		for _, limit := range []int{-1, 4096} {
			var a, b []byte
			var na, nb int
			if limit < 0 {
				a, b = Level(9).Encode(nil, s), used.Encode(nil, s)
			} else {
				a, na = Level(9).EncodeLimit(nil, s, limit)
				b, nb = used.EncodeLimit(nil, s, limit)
			}
			if !bytes.Equal(a, b) || na != nb {
				t.Fatalf("sample %d limit %d: a used Encoder gives different output", i, limit)
			}
			used.Encode(nil, ss[(i+3)%len(ss)])
			if i%3 == 0 {
				used.base = 1<<31 - uint32(i) // positions about to wrap
			}
		}
	}
}

// TestTruncate cuts blocks of each pattern to a limit and checks the cut
// decodes to the prefix it claims and obeys the end rules, and that a run
// whose one match is longer than the limit is cut inside that match (a
// cut between sequences would leave literals only).
func TestTruncate(t *testing.T) {
	for name, src := range patterns() {
		blk := Level(9).Encode(nil, src)
		for _, limit := range []int{13, 100, 4096, 65536} {
			cut, used := Truncate(blk, src, limit)
			if len(blk) <= limit {
				continue
			}
			if used == 0 {
				t.Errorf("%s limit %d: no cut", name, limit)
				continue
			}
			if len(cut) > limit {
				t.Fatalf("%s limit %d: cut of %d bytes", name, limit, len(cut))
			}
			checkBlock(t, cut, src[:used])
			// Long runs: a 4 KiB block holds far more than its size.
			if (name == "zeros" || name == "abc") && limit >= 4096 && used < 100*limit {
				t.Errorf("%s limit %d: cut decodes to only %d bytes", name, limit, used)
			}
		}
	}
}
