// Package zstdenc is a pure-Go Zstandard (RFC 8878) compressor built for
// ratio on small inputs such as 128 KiB filesystem blocks.
//
// Each call to Encoder.Compress writes one single-segment frame with the
// content size and no checksum. A binary-tree match finder feeds a
// price-based optimal parser (two passes: the second prices symbols with
// the statistics of the first), or, for speed, rows of recent positions
// feed a lazy matcher (Params.Lazy); literals are Huffman coded with
// github.com/klauspost/compress/huff0 and sequence codes with FSE tables
// chosen per block among predefined, RLE and new tables by estimated cost.
// Blocks that do not shrink are stored raw (or RLE).
//
// An Encoder is not safe for concurrent use; keep one per goroutine (for
// instance in a sync.Pool). Output depends only on the input and the
// parameters.
package zstdenc

import (
	"encoding/binary"
	"math"

	"github.com/klauspost/compress/huff0"
)

// blockMax is the largest zstd block (Block_Maximum_Size).
const blockMax = 128 << 10

// Params tune the match finder and parser.
type Params struct {
	// Depth is how many binary-tree nodes a match search visits (when
	// Rows is 0).
	Depth int
	// Nice is the match length taken at once without further parsing.
	Nice int
	// Passes is the number of parsing passes (1 or 2).
	Passes int
	// Tail is how many of the longest lengths of each match the parser
	// tries (shorter ones down to the previous match's length are
	// skipped).
	Tail int
	// NoSkipInsert leaves the positions inside matches of the nice
	// length out of the match finder.
	NoSkipInsert bool
	// NoHash3 turns off the search for close 3-byte matches.
	NoHash3 bool
	// Rows, if not 0, replaces the binary tree by rows of the 8 most
	// recent positions of each hash.
	Rows int
	// LitFlat flattens the first pass's literal prices: LitFlat/16 of
	// the average byte count is added to every byte's count.
	LitFlat int
	// Predefined prices the first pass's codes by zstd's predefined
	// distributions instead of typical frequencies.
	Predefined bool
	// Greedy prices the first pass with a greedy parse's statistics.
	Greedy bool
	// Lazy replaces the optimal parser by lazy matching (as C zstd's
	// lazy2 strategy): at each position the match of the best estimated
	// gain, unless one of the next two positions offers a clearly better
	// one. Passes, Tail, LitFlat, Predefined and Greedy do not apply.
	Lazy bool
	// Prune, if not 0, makes the one-pass parser (Passes 1) skip the
	// match search at positions whose successor is already reached for
	// at most Prune/256 bits more than the position itself: a match
	// from there rarely beats one from the successor. The positions are
	// still added to the match finder. C zstd's btopt does so at 128
	// (half a bit); measured on binary blocks, about a fifth less CPU
	// time for 0.3% larger output.
	Prune int
}

// DefaultParams are the parameters of level 19.
var DefaultParams = LevelParams(19)

// LevelParams returns the parameters for a zstd-style level, trading
// speed for ratio. Measured on 128 KiB blocks of Nix store files (of
// large files and of packed small ones) against klauspost/compress's best
// level and C zstd -15:
//
//   - levels up to 15: lazy matching over rows of recent positions; on
//     binary data (executables, libraries) 1.5-5% smaller than klauspost
//     best in a little less CPU time, but about 2% larger on text.
//   - levels 16 and up: two passes over a binary tree, the second priced
//     by the first's statistics; about 5% smaller than klauspost best
//     (within 1.5% of C zstd -15) at about 4x its CPU time, smaller than
//     klauspost on every input tested.
func LevelParams(level int) Params {
	if level <= 15 {
		return Params{Lazy: true, Nice: 32, Rows: 8}
	}
	return Params{Depth: 16, Nice: 64, Passes: 2, Tail: 64}
}

// Encoder compresses inputs into zstd frames, reusing its buffers.
type Encoder struct {
	p Params

	// Match finder over the whole input.
	head  []int32 // hash4 -> position+1
	head3 []int32 // hash3 -> position+1
	son   []int32 // binary tree: two children per position (+1)
	// Or rows of recent positions (+1) per hash, newest at rowHead.
	rows    []int32
	rowHead []uint8
	tags    []uint64 // a tag byte per row entry
	rowLog  uint

	// Parser state for one block.
	nodes    []node
	reps     [][3]uint32 // repeat offsets at each final node
	mstart   []int32     // first match of each position in matches; -1 skipped
	skip     []bool
	path     []int32
	blockEnd int // end of the block being parsed
	first    int // first match of the position being searched
	matches  []match
	seqs     []seq
	lits     []byte

	prices prices
	mlp    []int32

	// Entropy stage.
	huff          huff0.Scratch
	llT, mlT, ofT fseTable
	codes         [][3]uint8
	bw            bitWriter
	blk           []byte
}

// NewEncoder returns an encoder with parameters p.
func NewEncoder(p Params) *Encoder {
	if p.Depth < 1 {
		p.Depth = 1
	}
	if p.Nice < 4 {
		p.Nice = 4
	}
	if p.Tail < 1 {
		p.Tail = 1
	}
	if p.Passes < 1 {
		p.Passes = 1
	}
	return &Encoder{p: p}
}

// Compress appends one zstd frame holding src to dst.
func (e *Encoder) Compress(dst, src []byte) []byte {
	dst = appendFrameHeader(dst, len(src))
	if len(src) == 0 {
		return append(dst, 1, 0, 0) // last raw block of 0 bytes
	}
	e.reset(len(src))
	reps := [3]uint32{1, 4, 8}
	for start := 0; start < len(src); start += blockMax {
		end := min(start+blockMax, len(src))
		last := uint32(0)
		if end == len(src) {
			last = 1
		}
		n := end - start
		if n > 1 && allSame(src[start:end]) {
			e.insertRange(src, start, end)
			dst = appendBlockHeader(dst, last, 1, n)
			dst = append(dst, src[start])
			continue
		}
		saved := reps
		seqs, lits := e.parse(src, start, end, &reps)
		blk := e.appendLiterals(e.blk[:0], lits)
		blk = e.appendSequences(blk, seqs)
		e.blk = blk
		if len(blk) >= n {
			reps = saved
			dst = appendBlockHeader(dst, last, 0, n)
			dst = append(dst, src[start:end]...)
			continue
		}
		dst = appendBlockHeader(dst, last, 2, len(blk))
		dst = append(dst, blk...)
	}
	return dst
}

func appendBlockHeader(dst []byte, last, typ uint32, size int) []byte {
	h := last | typ<<1 | uint32(size)<<3
	return append(dst, byte(h), byte(h>>8), byte(h>>16))
}

// appendFrameHeader appends the magic number and a single-segment frame
// header with content size n.
func appendFrameHeader(dst []byte, n int) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, 0xFD2FB528)
	switch {
	case n < 256:
		return append(dst, 0x20, byte(n))
	case n < 65536+256:
		return binary.LittleEndian.AppendUint16(append(dst, 0x60), uint16(n-256))
	case uint64(n) < 1<<32:
		return binary.LittleEndian.AppendUint32(append(dst, 0xA0), uint32(n))
	default:
		return binary.LittleEndian.AppendUint64(append(dst, 0xE0), uint64(n))
	}
}

// HighEntropyBits reports whether n bytes of the given order-0 entropy
// (see Entropy) look random: at least 1 KiB of at least 7 bits per byte,
// data on which an optimal parser wins almost nothing over a fast one.
func HighEntropyBits(bits float64, n int) bool {
	return n >= 1024 && bits >= 7
}

// Entropy returns the order-0 entropy in bits per byte of n bytes whose
// byte values occur h[v] times each.
func Entropy(h *[256]uint32, n int) float64 {
	if n == 0 {
		return 0
	}
	fn := float64(n)
	bits := 0.0
	for _, c := range h {
		if c > 0 {
			bits -= float64(c) * math.Log2(float64(c)/fn)
		}
	}
	return bits / fn
}
