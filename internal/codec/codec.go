// Package codec is closurefs's one registry of block compressors. Image
// writers compress blocks with it and image readers decompress with it;
// every codec is safe for concurrent use.
package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/closurefs/closurefs/internal/zstdenc"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Codec compresses and decompresses whole blocks.
type Codec interface {
	// Name is the codec's registry name, e.g. "zstd".
	Name() string
	// Level is the compression level in use (0 where levels don't apply).
	Level() int
	// Compress appends the compressed form of src to dst.
	Compress(dst, src []byte) ([]byte, error)
	// Decompress appends the decompressed form of src to dst. It fails
	// with ErrTooLarge rather than produce more than limit bytes.
	Decompress(dst, src []byte, limit int) ([]byte, error)
}

// ErrTooLarge reports decompressed data larger than the caller's limit.
var ErrTooLarge = errors.New("decompressed data exceeds the expected size")

// Spec describes one registered codec.
type Spec struct {
	Name         string
	MinLevel     int
	MaxLevel     int
	DefaultLevel int // 0 when the codec has no levels
	// Summary says what the codec is, for help texts.
	Summary string
	new     func(level int) (Codec, error)
}

var specs = []Spec{
	{Name: "none", Summary: "no compression (data stored as it is)", new: func(int) (Codec, error) { return none{}, nil }},
	{Name: "zlib", MinLevel: 1, MaxLevel: 9, DefaultLevel: 9, Summary: "zlib stream (squashfs gzip)", new: newZlib},
	{Name: "deflate", MinLevel: 1, MaxLevel: 9, DefaultLevel: 9, Summary: "raw deflate (erofs deflate)", new: newDeflate},
	{Name: "zstd", MinLevel: 1, MaxLevel: 22, DefaultLevel: 15, Summary: "one zstd frame per block", new: newZstd},
	{Name: "xz", Summary: "xz stream with CRC32 check", new: func(int) (Codec, error) { return xzCodec{}, nil }},
	{Name: "lzma", Summary: "legacy .lzma stream (read only in practice)", new: func(int) (Codec, error) { return lzmaCodec{}, nil }},
	{Name: "lz4", Summary: "raw LZ4 block, fast compressor", new: func(int) (Codec, error) { return newLZ4(0) }},
	{Name: "lz4hc", MinLevel: 1, MaxLevel: 12, DefaultLevel: 9, Summary: "raw LZ4 block, high-compression compressor", new: newLZ4},
}

// Specs lists the registered codecs.
func Specs() []Spec { return append([]Spec(nil), specs...) }

// Lookup returns the spec of the named codec.
func Lookup(name string) (Spec, bool) {
	for _, s := range specs {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// New returns the named codec at the given level; level 0 selects the
// codec's default.
func New(name string, level int) (Codec, error) {
	s, ok := Lookup(name)
	if !ok {
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.Name
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown compressor %q (known: %s)", name, strings.Join(names, ", "))
	}
	if level == 0 {
		level = s.DefaultLevel
	}
	if s.DefaultLevel == 0 && level != 0 {
		return nil, fmt.Errorf("compressor %s takes no level", name)
	}
	if s.DefaultLevel != 0 && (level < s.MinLevel || level > s.MaxLevel) {
		return nil, fmt.Errorf("compressor %s: level %d out of range %d-%d", name, level, s.MinLevel, s.MaxLevel)
	}
	return s.new(level)
}

// Parse parses a "name[,level]" or "name[,level=N]" specification as
// mksquashfs, gensquashfs and mkfs.erofs spell it, and returns the codec.
func Parse(spec string) (Codec, error) {
	name, rest, _ := strings.Cut(spec, ",")
	level := 0
	if rest != "" {
		rest = strings.TrimPrefix(rest, "level=")
		n, err := strconv.Atoi(rest)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("compressor %q: bad level %q", spec, rest)
		}
		level = n
	}
	return New(name, level)
}

// checkLimit returns ErrTooLarge if out grew past limit.
func checkLimit(out []byte, start, limit int) ([]byte, error) {
	if len(out)-start > limit {
		return out[:start], ErrTooLarge
	}
	return out, nil
}

// readLimited appends at most limit bytes read from r to dst and fails if
// r holds more.
func readLimited(dst []byte, r io.Reader, limit int) ([]byte, error) {
	start := len(dst)
	var buf bytes.Buffer
	buf.Grow(64 << 10)
	n, err := io.Copy(&buf, io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return dst, err
	}
	if n > int64(limit) {
		return dst[:start], ErrTooLarge
	}
	return append(dst, buf.Bytes()...), nil
}

type none struct{}

func (none) Name() string                             { return "none" }
func (none) Level() int                               { return 0 }
func (none) Compress(dst, src []byte) ([]byte, error) { return append(dst, src...), nil }
func (none) Decompress(dst, src []byte, limit int) ([]byte, error) {
	if len(src) > limit {
		return dst, ErrTooLarge
	}
	return append(dst, src...), nil
}

// flateCodec serves both zlib streams and raw deflate.
type flateCodec struct {
	name    string
	level   int
	writers sync.Pool
}

type flateWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

func newZlib(level int) (Codec, error) {
	if _, err := zlib.NewWriterLevel(io.Discard, level); err != nil {
		return nil, err
	}
	return &flateCodec{name: "zlib", level: level}, nil
}

func newDeflate(level int) (Codec, error) {
	if _, err := flate.NewWriter(io.Discard, level); err != nil {
		return nil, err
	}
	return &flateCodec{name: "deflate", level: level}, nil
}

func (c *flateCodec) Name() string { return c.name }
func (c *flateCodec) Level() int   { return c.level }

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func (c *flateCodec) Compress(dst, src []byte) ([]byte, error) {
	aw := &appendWriter{b: dst}
	var w flateWriter
	if v := c.writers.Get(); v != nil {
		w = v.(flateWriter)
		w.Reset(aw)
	} else if c.name == "zlib" {
		w, _ = zlib.NewWriterLevel(aw, c.level)
	} else {
		w, _ = flate.NewWriter(aw, c.level)
	}
	if _, err := w.Write(src); err != nil {
		return dst, err
	}
	if err := w.Close(); err != nil {
		return dst, err
	}
	w.Reset(io.Discard)
	c.writers.Put(w)
	return aw.b, nil
}

func (c *flateCodec) Decompress(dst, src []byte, limit int) ([]byte, error) {
	var r io.ReadCloser
	if c.name == "zlib" {
		var err error
		if r, err = zlib.NewReader(bytes.NewReader(src)); err != nil {
			return dst, fmt.Errorf("zlib: %w", err)
		}
	} else {
		r = flate.NewReader(bytes.NewReader(src))
	}
	defer r.Close()
	out, err := readLimited(dst, r, limit)
	if err != nil && err != ErrTooLarge {
		err = fmt.Errorf("%s: %w", c.name, err)
	}
	return out, err
}

type zstdCodec struct {
	level int
	enc   *zstd.Encoder
	dec   *zstd.Decoder
	// The encoders of each kind of block (see zstdPlan); nil for
	// klauspost/compress. Kinds with the same parameters share one.
	text, mixed, binary, rich, random *encoders
	// own: some kind of block goes to internal/zstdenc at this level.
	own bool
}

// encoders holds idle zstdenc encoders of one parameter set. A bounded
// list rather than a sync.Pool, which empties at every garbage
// collection: each encoder holds a few MiB of buffers that are costly to
// allocate again.
type encoders struct {
	params zstdenc.Params
	idle   chan *zstdenc.Encoder
}

// compress compresses src with an idle encoder, or a new one.
func (p *encoders) compress(dst, src []byte) []byte {
	var e *zstdenc.Encoder
	select {
	case e = <-p.idle:
	default:
		e = zstdenc.NewEncoder(p.params)
	}
	dst = e.Compress(dst, src)
	select {
	case p.idle <- e:
	default: // enough idle encoders: let this one go
	}
	return dst
}

// ownZstdMax is the largest input internal/zstdenc compresses: an
// encoder holds about 8 MiB plus 8 bytes per input byte (its match
// tree), so bigger inputs go to klauspost/compress.
const ownZstdMax = 4 << 20

func newZstd(level int) (Codec, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return nil, err
	}
	plan := zstdPlanFor(level)
	byParams := make(map[zstdenc.Params]*encoders)
	pool := func(p *zstdenc.Params) *encoders {
		if p == nil {
			return nil
		}
		if byParams[*p] == nil {
			byParams[*p] = &encoders{params: *p, idle: make(chan *zstdenc.Encoder, runtime.GOMAXPROCS(0)+2)}
		}
		return byParams[*p]
	}
	if plan.rich == nil {
		plan.rich = plan.binary
	}
	return &zstdCodec{level: level, enc: enc, dec: dec, own: plan != zstdPlan{},
		text: pool(plan.text), mixed: pool(plan.mixed), binary: pool(plan.binary), rich: pool(plan.rich), random: pool(plan.random)}, nil
}

// A zstdPlan names the encoder of each kind of block at one level, by
// the share of text bytes in the block (see textShare): nil is
// klauspost/compress at that level, otherwise internal/zstdenc with
// those parameters.
type zstdPlan struct {
	text   *zstdenc.Params // 80% text and more
	mixed  *zstdenc.Params // 50-80% text (.mo files, data tables, code with many strings)
	binary *zstdenc.Params // under 50% text (executables, libraries)
	// rich takes the binary blocks of at least richBits bits per byte
	// (zstdenc.Entropy): machine code and data rather than tables of
	// zeros and padding, where an optimal parser gains the most over a
	// lazy one. nil: binary takes them.
	rich   *zstdenc.Params
	random *zstdenc.Params // near-random data (compressed files; see zstdenc.HighEntropyBits)
}

// richBits is the order-0 entropy (bits per byte) from which a binary
// block counts as rich (see zstdPlan). On the bench closure an optimal
// parse gains little over a lazy one below it, and 2-3% above it.
const richBits = 4.0

// The zstdenc parameter sets the plans use, from the cheapest. Measured
// on 128 KiB blocks of the bench closure's files and packed file tails,
// against klauspost best (which klauspost/compress uses from level 10):
var (
	// lazyParams: lazy matching over rows of recent positions; on binary
	// blocks 1.5-5% smaller than klauspost best in less CPU time, but
	// about 2% larger on text; on near-random blocks 0.5% smaller.
	lazyParams = zstdenc.LevelParams(15)
	// rowsParams: one optimal parsing pass over the same rows; 3-4%
	// smaller than lazyParams on binary and mixed blocks at about twice
	// its CPU time, no better than klauspost best on text.
	rowsParams = zstdenc.Params{Nice: 16, Passes: 1, Tail: 8, Rows: 8, LitFlat: 48}
	// prunedParams: rowsParams without the match search where the next
	// position is already reached for at most half a bit more (as C
	// zstd's btopt); on binary blocks of code and data a fifth less CPU
	// time than rowsParams for 0.3% larger output.
	prunedParams = withPrune(rowsParams, 128)
	// treeParams: one optimal pass over a shallow binary tree, which
	// finds the long matches rows miss: another 2-3% smaller than
	// rowsParams at about 1.5 times its CPU time.
	treeParams = zstdenc.Params{Depth: 8, Nice: 32, Passes: 1, Tail: 16, LitFlat: 48}
	// deepParams: a deeper tree and longer matches, for text: 4.5%
	// smaller than klauspost best there at about 5 times its CPU time.
	deepParams = zstdenc.Params{Depth: 16, Nice: 64, Passes: 1, Tail: 64}
	// bestParams: two passes, the second priced by the first's
	// statistics; within 1.5% of C zstd -15 (gensquashfs's default) at
	// about 4 times klauspost best's CPU time.
	bestParams = zstdenc.LevelParams(19)
)

// withPrune returns p with Prune set to prune.
func withPrune(p zstdenc.Params, prune int) zstdenc.Params {
	p.Prune = prune
	return p
}

// zstdPlanFor returns the plan of a level. Below 10 klauspost/compress
// compresses every block. Levels 10-14 are the fastest of ours: on the
// bench closure's squashfs image, 0.4 times gensquashfs's time (at its
// level 15) for 1.027 times its size. Level 15, the default, adds the
// pruned optimal parse of rich binary blocks: 0.46-0.48 times the time
// for 1.0198 times the size. Each level above spends more CPU time on the
// kinds of blocks where it gains the most per CPU second; see
// scripts/bench-squashfs.sh (LEVELS) for their sizes and times.
func zstdPlanFor(level int) zstdPlan {
	switch {
	case level < 10:
		return zstdPlan{}
	case level < 15:
		return zstdPlan{mixed: &rowsParams, binary: &lazyParams, random: &lazyParams}
	case level == 15:
		return zstdPlan{mixed: &rowsParams, binary: &lazyParams, rich: &prunedParams, random: &lazyParams}
	case level == 16:
		return zstdPlan{mixed: &treeParams, binary: &rowsParams, random: &lazyParams}
	case level == 17:
		return zstdPlan{mixed: &treeParams, binary: &treeParams, random: &lazyParams}
	case level == 18:
		return zstdPlan{text: &deepParams, mixed: &treeParams, binary: &treeParams, random: &lazyParams}
	default:
		return zstdPlan{text: &bestParams, mixed: &bestParams, binary: &bestParams, random: &lazyParams}
	}
}

// textShareCounts returns the share of n bytes that are printable
// ASCII, tabs or newlines, in percent, where byte value v occurs h[v]
// times.
func textShareCounts(h *[256]uint32, n int) int {
	if n == 0 {
		return 100
	}
	t := h['\n'] + h['\t'] + h['\r']
	for c := 0x20; c < 0x7f; c++ {
		t += h[c]
	}
	return int(t) * 100 / n
}

func (c *zstdCodec) Name() string { return "zstd" }
func (c *zstdCodec) Level() int   { return c.level }
func (c *zstdCodec) Compress(dst, src []byte) ([]byte, error) {
	if len(src) > ownZstdMax || !c.own {
		return c.enc.EncodeAll(src, dst), nil
	}
	// One count of the byte values serves every check.
	var h [256]uint32
	for _, b := range src {
		h[b]++
	}
	bits := zstdenc.Entropy(&h, len(src))
	var p *encoders
	switch t := textShareCounts(&h, len(src)); {
	case zstdenc.HighEntropyBits(bits, len(src)):
		p = c.random
	case t >= 80:
		p = c.text
	case t >= 50:
		p = c.mixed
	case bits >= richBits:
		p = c.rich
	default:
		p = c.binary
	}
	if p == nil {
		return c.enc.EncodeAll(src, dst), nil
	}
	return p.compress(dst, src), nil
}

// zstdSlack is the spare output capacity the zstd decoder needs past the
// end of a block to use its fast (over-copying) sequence execution; with
// less, klauspost/compress decodes with exact copies, about 1.5x slower.
const zstdSlack = 64

func (c *zstdCodec) Decompress(dst, src []byte, limit int) ([]byte, error) {
	// The decoder stops at dst's capacity. zstdSlack bytes past the limit
	// let it use its fast copies, which may write a little past the end of
	// each match; output beyond limit is still an error.
	start := len(dst)
	if want := limit + zstdSlack; cap(dst)-start < want {
		nd := make([]byte, start, start+want)
		copy(nd, dst)
		dst = nd
	} else {
		dst = dst[: start : start+want]
	}
	out, err := c.dec.DecodeAll(src, dst)
	if err != nil {
		if len(out)-start > limit || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return dst[:start], ErrTooLarge
		}
		return dst[:start], fmt.Errorf("zstd: %w", err)
	}
	return checkLimit(out, start, limit)
}

type xzCodec struct{}

func (xzCodec) Name() string { return "xz" }
func (xzCodec) Level() int   { return 0 }
func (xzCodec) Compress(dst, src []byte) ([]byte, error) {
	dict := 1 << 20
	for dict < len(src) && dict < 1<<26 {
		dict <<= 1
	}
	return compressStream(dst, src, func(w io.Writer) (io.WriteCloser, error) {
		return xz.WriterConfig{CheckSum: xz.CRC32, DictCap: dict}.NewWriter(w)
	})
}

// compressStream appends to dst the output of the stream compressor that
// open makes, given all of src.
func compressStream(dst, src []byte, open func(io.Writer) (io.WriteCloser, error)) ([]byte, error) {
	aw := &appendWriter{b: dst}
	w, err := open(aw)
	if err != nil {
		return dst, err
	}
	if _, err := w.Write(src); err != nil {
		return dst, err
	}
	if err := w.Close(); err != nil {
		return dst, err
	}
	return aw.b, nil
}
func (xzCodec) Decompress(dst, src []byte, limit int) ([]byte, error) {
	// The reader allocates its whole dictionary up front; back references
	// never reach past the output, so a dictionary of limit bytes suffices
	// (allocating 64 MiB per block made small blocks 100x slower).
	dict := min(max(limit, lzma.MinDictCap), 64<<20)
	r, err := xz.ReaderConfig{DictCap: dict}.NewReader(bytes.NewReader(src))
	if err != nil {
		return dst, fmt.Errorf("xz: %w", err)
	}
	out, err := readLimited(dst, r, limit)
	if err != nil && err != ErrTooLarge {
		err = fmt.Errorf("xz: %w", err)
	}
	return out, err
}

type lzmaCodec struct{}

func (lzmaCodec) Name() string { return "lzma" }
func (lzmaCodec) Level() int   { return 0 }
func (lzmaCodec) Compress(dst, src []byte) ([]byte, error) {
	return compressStream(dst, src, func(w io.Writer) (io.WriteCloser, error) {
		return lzma.WriterConfig{EOSMarker: true}.NewWriter(w)
	})
}
func (lzmaCodec) Decompress(dst, src []byte, limit int) ([]byte, error) {
	// The reader allocates the dictionary size of the header (up to 64
	// MiB); the output never exceeds limit, so neither need the window:
	// shrink a bigger one in a copy of the 13-byte header.
	if dict := max(limit, lzma.MinDictCap); len(src) >= lzma.HeaderLen && int64(binary.LittleEndian.Uint32(src[1:])) > int64(dict) {
		hdr := append([]byte(nil), src[:lzma.HeaderLen]...)
		binary.LittleEndian.PutUint32(hdr[1:], uint32(dict))
		src = append(hdr, src[lzma.HeaderLen:]...)
	}
	r, err := lzma.ReaderConfig{DictCap: 64 << 20}.NewReader(bytes.NewReader(src))
	if err != nil {
		return dst, fmt.Errorf("lzma: %w", err)
	}
	out, err := readLimited(dst, r, limit)
	if err != nil && err != ErrTooLarge {
		err = fmt.Errorf("lzma: %w", err)
	}
	return out, err
}

type lz4Codec struct {
	level int // 0: fast compressor; otherwise HC level
	pool  sync.Pool
}

func newLZ4(level int) (Codec, error) { return &lz4Codec{level: level}, nil }

func (c *lz4Codec) Name() string {
	if c.level == 0 {
		return "lz4"
	}
	return "lz4hc"
}
func (c *lz4Codec) Level() int { return c.level }

// Compress emits a raw LZ4 block. When the data does not compress, the
// result is a block of literals (a valid LZ4 block slightly larger than
// src) so the caller can still decide to store src uncompressed.
func (c *lz4Codec) Compress(dst, src []byte) ([]byte, error) {
	start := len(dst)
	need := lz4.CompressBlockBound(len(src))
	if cap(dst)-start < need {
		nd := make([]byte, start, start+need)
		copy(nd, dst)
		dst = nd
	}
	out := dst[start : start+need]
	var n int
	var err error
	if c.level == 0 {
		comp, _ := c.pool.Get().(*lz4.Compressor)
		if comp == nil {
			comp = new(lz4.Compressor)
		}
		n, err = comp.CompressBlock(src, out)
		c.pool.Put(comp)
	} else {
		comp, _ := c.pool.Get().(*lz4.CompressorHC)
		if comp == nil {
			comp = &lz4.CompressorHC{Level: lz4.CompressionLevel(1 << (8 + c.level))}
		}
		n, err = comp.CompressBlock(src, out)
		c.pool.Put(comp)
	}
	if err != nil {
		return dst[:start], fmt.Errorf("lz4: %w", err)
	}
	if n == 0 { // incompressible: emit literals only
		return appendLZ4Literals(dst[:start], src), nil
	}
	return dst[:start+n], nil
}

// appendLZ4Literals appends a raw LZ4 block holding src as one literal run.
func appendLZ4Literals(dst, src []byte) []byte {
	n := len(src)
	if n < 15 {
		dst = append(dst, byte(n<<4))
	} else {
		dst = append(dst, 0xf0)
		for r := n - 15; ; r -= 255 {
			if r < 255 {
				dst = append(dst, byte(r))
				break
			}
			dst = append(dst, 255)
		}
	}
	return append(dst, src...)
}

func (c *lz4Codec) Decompress(dst, src []byte, limit int) ([]byte, error) {
	start := len(dst)
	if cap(dst)-start < limit {
		nd := make([]byte, start, start+limit)
		copy(nd, dst)
		dst = nd
	}
	n, err := lz4.UncompressBlock(src, dst[start:start+limit])
	if err != nil {
		if errors.Is(err, lz4.ErrInvalidSourceShortBuffer) {
			return dst[:start], ErrTooLarge
		}
		return dst[:start], fmt.Errorf("lz4: %w", err)
	}
	return dst[:start+n], nil
}
