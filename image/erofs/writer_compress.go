package erofs

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"sync"

	"github.com/closurefs/closurefs/internal/codec"
	"github.com/closurefs/closurefs/internal/lz4"
	"github.com/klauspost/compress/zstd"
)

// compressor turns file segments into pclusters.
type compressor struct {
	alg           int
	codec         codec.Codec
	blksz         int
	blkbits       uint
	pclusterBlks  int
	maxExtent     int // largest decompressed extent
	zstdWindowLog int
	compact       bool
	ztail         bool
	frags         bool
	// hc, when set, encodes lz4hc with the optimal-parsing encoder.
	hcLevel int
	hcPool  sync.Pool
	// zenc encodes zstd pclusters, on as many goroutines at once as there
	// are workers.
	zenc *zstd.Encoder
}

// extent is one pcluster of a compressed file.
type extent struct {
	lstart  uint64 // logical start in the file
	llen    uint32
	blocks  uint32 // physical blocks (0 when inline)
	plain   bool   // stored uncompressed
	csize   int    // bytes of this extent in the segment's data
	blkaddr uint32
	inline  bool // ztailpacking: stored after the indexes
	// fragment: the raw tail goes to the packed inode (fragments).
	fragment bool
}

func newCompressor(opts Options, bs int) (*compressor, error) {
	c := &compressor{blksz: bs, blkbits: uint(bits.TrailingZeros(uint(bs))), compact: !opts.FullIndexes, ztail: opts.Ztailpacking, frags: opts.Fragments}
	name := opts.Compressor
	switch name {
	case "lz4", "lz4hc":
		c.alg = AlgLZ4
	case "zstd":
		c.alg = AlgZstd
	case "deflate":
		c.alg = AlgDeflate
	default:
		return nil, fmt.Errorf("erofs: unsupported compressor %q (supported: lz4, lz4hc, zstd, deflate)", name)
	}
	if name == "lz4" && opts.Level != 0 {
		return nil, fmt.Errorf("erofs: compressor lz4 takes no level (use lz4hc)")
	}
	level := opts.Level
	if level == 0 {
		// mkfs.erofs's defaults (lz4hc's, 9, is also the codec's).
		switch name {
		case "zstd":
			level = 3
		case "deflate":
			level = 1
		}
	}
	cd, err := codec.New(name, level)
	if err != nil {
		return nil, fmt.Errorf("erofs: %w", err)
	}
	c.codec = cd
	if name == "zstd" {
		// The codec's shared encoder runs one block at a time.
		c.zenc, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(max(opts.Jobs, runtime.GOMAXPROCS(0))),
			zstd.WithZeroFrames(true))
		if err != nil {
			return nil, fmt.Errorf("erofs: zstd: %w", err)
		}
	}
	if name == "lz4hc" {
		c.hcLevel = cd.Level()
	}
	ps := opts.PclusterSize
	if ps == 0 {
		ps = bs
	}
	if ps%bs != 0 || ps > 1<<20 || ps/bs >= 1<<11 {
		return nil, fmt.Errorf("erofs: physical cluster size %d: must be a multiple of the block size %d, at most 1 MiB", ps, bs)
	}
	c.pclusterBlks = ps / bs
	c.maxExtent = min(1<<20, 1024*bs)
	c.zstdWindowLog = 20
	return c, nil
}

// compressSegment splits src (the file bytes from off) into extents. The
// returned data holds each extent's pcluster: blocks*blksz bytes, the
// compressed bytes right-aligned (zero padding first) or plain bytes at
// the start. The last extent of the file's last segment is returned
// unpadded (csize bytes) so the caller can inline it. It stops with
// ctx's error between pclusters once ctx is done.
func (c *compressor) compressSegment(ctx context.Context, src []byte, off int64, last, frags bool) ([]byte, []extent, error) {
	bs := c.blksz
	capBytes := c.pclusterBlks * bs
	// Room for about half the input (what store content compresses to)
	// from the start: growing by appends from nothing would leave several
	// times the output as garbage for large segments.
	data := make([]byte, 0, min(len(src), len(src)/2+capBytes))
	var exts []extent
	pos := 0
	ratio := 3.0
	var scratch []byte
	// rawBlocks counts the blocks still to store raw without trying to
	// compress them: those a fit has just found incompressible.
	rawBlocks := 0
	for pos < len(src) {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		rem := src[pos:]
		if rawBlocks > 0 && len(rem) > bs {
			rawBlocks--
			exts = append(exts, extent{lstart: uint64(off) + uint64(pos), llen: uint32(bs), blocks: 1, plain: true, csize: bs})
			data = append(data, rem[:bs]...)
			pos += bs
			continue
		}
		rawBlocks = 0
		if frags && last && len(rem) <= capBytes {
			// The rest fits one pcluster even uncompressed: it is the
			// file's tail, kept raw for the packed inode (compressed as
			// a whole), so it is not compressed here.
			data = append(data, rem...)
			exts = append(exts, extent{lstart: uint64(off) + uint64(pos), llen: uint32(len(rem)), fragment: true, csize: len(rem)})
			break
		}
		if len(rem) > c.maxExtent {
			rem = rem[:c.maxExtent]
		}
		var comp []byte
		var used int
		var err error
		comp, used, ratio, err = c.fit(ctx, scratch[:0], rem, capBytes, ratio)
		if err != nil {
			return nil, nil, err
		}
		scratch = comp[:0]
		e := extent{lstart: uint64(off) + uint64(pos)}
		if frags && last && used == len(src)-pos {
			// The rest fits one pcluster: it is the file's tail, kept
			// raw for the packed inode.
			e.llen = uint32(used)
			e.fragment = true
			e.csize = used
			data = append(data, src[pos:]...)
			exts = append(exts, e)
			break
		}
		cb := (len(comp) + bs - 1) / bs
		isLast := last && pos+used == len(src)
		// Compressed when it saves a block, or for a file's last extent
		// (which may be inlined) when it saves bytes.
		plainBlocks := (used + bs - 1) / bs
		if isLast {
			// A final plain extent is split at lcluster boundaries.
			plainBlocks = (int((uint64(off)+uint64(pos))%uint64(bs)) + used + bs - 1) / bs
		}
		saves := cb < plainBlocks || (c.ztail && isLast && len(comp) < used)
		if used > 0 && saves && (c.alg != AlgDeflate || comp[0] != 0) {
			e.llen = uint32(used)
			e.blocks = uint32(cb)
			if isLast {
				e.csize = len(comp)
				data = append(data, comp...)
			} else {
				e.csize = cb * bs
				data = append(data, make([]byte, cb*bs-len(comp))...)
				data = append(data, comp...)
			}
		} else {
			// Plain: one block of raw data. The other full blocks the
			// fit covered are stored raw too (as mkfs.erofs does), not
			// fitted again one block further each time: on
			// incompressible data that would compress every byte once
			// per block of a big pcluster.
			if used >= 2*bs {
				rawBlocks = used/bs - 1
			}
			n := min(bs, len(src)-pos)
			if last && pos+n == len(src) {
				// The kernel maps a final plain extent up to the end of
				// its last lcluster: keep it within one lcluster.
				if b := bs - int((uint64(off)+uint64(pos))%uint64(bs)); b < n {
					n = b
				}
			}
			e.llen = uint32(n)
			e.blocks = 1
			e.plain = true
			isLast = last && pos+n == len(src)
			if isLast {
				e.csize = n
				data = append(data, src[pos:pos+n]...)
			} else {
				e.csize = bs
				data = append(data, src[pos:pos+n]...)
				data = append(data, make([]byte, bs-n)...)
			}
		}
		exts = append(exts, e)
		pos += int(e.llen)
	}
	return data, exts, nil
}

// fit compresses as much of src as fits in capBytes of output and returns
// the compressed bytes, the input length they hold and an updated
// compression ratio estimate.
func (c *compressor) fit(ctx context.Context, dst, src []byte, capBytes int, ratio float64) ([]byte, int, float64, error) {
	guess := int(float64(capBytes)*ratio*1.15) + 256
	if c.alg == AlgLZ4 && c.hcLevel != 0 {
		e, _ := c.hcPool.Get().(*lz4.Encoder)
		if e == nil {
			e = lz4.Level(c.hcLevel)
		}
		out, used := e.EncodeLimit(dst[:0], src, capBytes)
		c.hcPool.Put(e)
		return out, used, ratio, nil
	}
	if c.alg == AlgLZ4 {
		for {
			l := min(len(src), guess)
			out, err := c.lz4(dst[:0], src[:l])
			if err != nil {
				return nil, 0, ratio, err
			}
			if len(out) <= capBytes {
				if l == len(src) {
					return out, l, ratio, nil
				}
				guess = l * 2
				continue
			}
			t, used := lz4.Truncate(out, src[:l], capBytes)
			if used == 0 {
				return out[:0], 0, ratio, nil
			}
			return t, used, float64(used) / float64(capBytes), nil
		}
	}
	return c.fitTrials(ctx, dst, src, capBytes, ratio)
}

// lz4 compresses src into a raw LZ4 block.
func (c *compressor) lz4(dst, src []byte) ([]byte, error) {
	if c.hcLevel == 0 {
		return c.codec.Compress(dst, src)
	}
	e, _ := c.hcPool.Get().(*lz4.Encoder)
	if e == nil {
		e = lz4.Level(c.hcLevel)
	}
	out := e.Encode(dst, src)
	c.hcPool.Put(e)
	return out, nil
}

// finishCompressed places a compressed file's last pcluster (inline or in
// a block) and encodes its map header and indexes.
func (c *compressor) finishCompressed(wr *Writer, fs *fileState, h io.Writer) error {
	in := fs.in
	exts := fs.ext
	lastE := &exts[len(exts)-1]
	var tail []byte
	var fragOff int64 = -1
	if lastE.fragment {
		var err error
		if fragOff, err = wr.addFragment(fs.pending); err != nil {
			return err
		}
		fs.pending = nil
		lastE.blocks = 0
		wr.incompat |= FeatureIncompatFragments
	}
	if c.ztail && fs.pending != nil && len(fs.pending) < c.blksz {
		// Inline when header, indexes and tail fit the rules.
		metaLen := c.metaLen(in, len(exts), c.compact && !fs.shared)
		if compressedHeadEnd(in.baseSize())+metaLen+len(fs.pending) <= c.blksz || len(fs.pending) <= c.blksz/2 {
			tail = fs.pending
			lastE.inline = true
			lastE.blocks = 0
			fs.pending = nil
		}
	}
	if err := wr.flushPending(fs, h); err != nil {
		return err
	}
	var total uint32
	for _, e := range exts {
		total += e.blocks
	}
	in.u = total
	// Compact indexes count a file's pclusters in order: a file sharing
	// pclusters with another needs full ones (as mkfs.erofs does).
	compact := c.compact && !fs.shared
	if compact {
		in.layout = LayoutCompressedCompact
	} else {
		in.layout = LayoutCompressedFull
	}
	if fragOff >= 0 && len(exts) == 1 {
		// The whole file is a fragment: just the map header.
		h := make([]byte, MapHeaderSize)
		binary.LittleEndian.PutUint64(h, uint64(fragOff)|1<<63)
		in.inline = h
		in.tailLen = 0
		return nil
	}
	in.tailLen = len(tail)
	if err := wr.keepInline(in, c.encodeMeta(in, exts, tail, fragOff, compact)); err != nil {
		return err
	}
	if tail != nil {
		wr.incompat |= FeatureIncompatZtailpacking
	}
	return nil
}

// compressedHeadEnd returns the offset of the map header from the inode
// start: inode and xattrs rounded up to 8.
func compressedHeadEnd(base int) int { return (base + 7) &^ 7 }

// metaLen returns the size of the map header and indexes of a file, with
// compact or full indexes.
func (c *compressor) metaLen(in *inode, nExt int, compact bool) int {
	total := int((in.size + uint64(c.blksz) - 1) >> c.blkbits)
	if !compact {
		return MapHeaderSize + 8 + total*LclusterIndexSize
	}
	init4, n2, end4 := c.compactCounts(in, total)
	return MapHeaderSize + init4*4 + n2*2 + (end4+1)/2*8
}

func (c *compressor) compactCounts(in *inode, total int) (init4, n2, end4 int) {
	mpos := compressedHeadEnd(in.baseSize()) + MapHeaderSize
	if c.blkbits > 12 {
		return 0, 0, total
	}
	init4 = (32 - mpos%32) / 4
	if init4 == 8 {
		init4 = 0
	}
	if init4 > total {
		return 0, 0, total
	}
	n2 = (total - init4) / 16 * 16
	return init4, n2, total - init4 - n2
}

// lcEntry is one lcluster's index before encoding.
type lcEntry struct {
	typ     int
	ofs     uint16
	blk     uint32
	d0, d1  uint16
	cblkcnt bool
}

// encodeMeta returns the map header, indexes and inline tail of a file.
func (c *compressor) encodeMeta(in *inode, exts []extent, tail []byte, fragOff int64, compact bool) []byte {
	bs := uint64(c.blksz)
	total := int((in.size + bs - 1) >> c.blkbits)
	big := c.pclusterBlks > 1
	ents := make([]lcEntry, total)
	isHead := make([]bool, total)
	headOf := make([]int, total) // extent index whose head is at or before
	for i, e := range exts {
		lcn := int(e.lstart >> c.blkbits)
		isHead[lcn] = true
		t := LclusterHead1
		if e.plain {
			t = LclusterPlain
		}
		ents[lcn] = lcEntry{typ: t, ofs: uint16(e.lstart & (bs - 1)), blk: e.blkaddr}
		_ = i
	}
	last := -1
	for j := 0; j < total; j++ {
		if isHead[j] {
			last = j
			headOf[j] = j
			continue
		}
		headOf[j] = last
	}
	next := total
	for j := total - 1; j >= 0; j-- {
		if isHead[j] {
			next = j
			continue
		}
		e := &ents[j]
		e.typ = LclusterNonhead
		e.d0 = uint16(j - headOf[j])
		e.d1 = uint16(next - j)
	}
	if big {
		for _, e := range exts {
			lcn := int(e.lstart >> c.blkbits)
			if lcn+1 < total && !isHead[lcn+1] && !e.inline && !e.fragment {
				ents[lcn+1].cblkcnt = true
				ents[lcn+1].d0 = uint16(LID0CblkCnt | e.blocks)
			}
		}
	}
	var advise uint16
	if big {
		advise |= AdviseBigPcluster1 | AdviseBigPcluster2
	}
	if tail != nil {
		advise |= AdviseInlinePcluster
	}
	var out []byte
	if !compact {
		out = make([]byte, MapHeaderSize+8+total*LclusterIndexSize, MapHeaderSize+8+total*LclusterIndexSize+len(tail))
		for j, e := range ents {
			x := LclusterIndex{Advise: uint16(e.typ), ClusterOfs: e.ofs, BlkAddr: e.blk}
			if e.typ == LclusterNonhead {
				x.ClusterOfs = 0
				x.BlkAddr = uint32(e.d0) | uint32(e.d1)<<16
			}
			x.Encode(out[MapHeaderSize+8+j*LclusterIndexSize:])
		}
	} else {
		init4, n2, end4 := c.compactCounts(in, total)
		if n2 > 0 {
			advise |= AdviseCompacted2B
		}
		out = make([]byte, MapHeaderSize, MapHeaderSize+init4*4+n2*2+(end4+1)/2*8+len(tail))
		pos := 0
		for k := 0; k < init4; k += 2 {
			out = c.appendPack(out, ents, pos, 2, 4, big)
			pos += 2
		}
		for k := 0; k < n2; k += 16 {
			out = c.appendPack(out, ents, pos, 16, 2, big)
			pos += 16
		}
		for k := 0; k < end4; k += 2 {
			out = c.appendPack(out, ents, pos, 2, 4, big)
			pos += 2
		}
		if c.blkbits <= 12 {
			// The kernel derives the 2B region from the advise bit.
			advise |= AdviseCompacted2B
		}
	}
	if fragOff >= 0 {
		advise |= AdviseFragmentPcluster
		binary.LittleEndian.PutUint32(out, uint32(fragOff))
		binary.LittleEndian.PutUint16(out[4:], advise)
		out[6] = uint8(c.alg)
		out[7] = 0
		return out
	}
	MapHeader{IdataSize: uint16(len(tail)), Advise: advise, AlgorithmType: uint8(c.alg)}.Encode(out)
	return append(out, tail...)
}

// appendPack encodes vcnt entries starting at ents[start] (entries past
// the end are zero) as one compact pack of vcnt*unit bytes.
func (c *compressor) appendPack(out []byte, all []lcEntry, start, vcnt, unit int, big bool) []byte {
	const lobits = 12
	size := vcnt * unit
	encodebits := (size*8 - 32) / vcnt
	pack := make([]byte, size+4)
	ents := make([]lcEntry, vcnt)
	for i := range ents {
		if start+i < len(all) {
			ents[i] = all[start+i]
		}
	}
	lo := make([]uint32, vcnt)
	for i, e := range ents {
		switch {
		case e.typ != LclusterNonhead:
			lo[i] = uint32(e.ofs)
		case e.cblkcnt:
			lo[i] = uint32(e.d0)
		case i == vcnt-1:
			lo[i] = uint32(min(e.d1, LID0CblkCnt-1))
		default:
			lo[i] = uint32(e.d0)
		}
		v := uint32(e.typ)<<lobits | lo[i]
		p := i * encodebits
		x := binary.LittleEndian.Uint32(pack[p/8:]) | v<<(p%8)
		binary.LittleEndian.PutUint32(pack[p/8:], x)
	}
	// Base block address: the first head's address minus what the kernel
	// counts before it.
	var base uint32
	for i, e := range ents {
		if start+i >= len(all) {
			// Padding past the file's last lcluster (zero entries read
			// as heads) holds no head: walking back from it over the
			// d0 = 1 of an inline or fragment tail never ended.
			break
		}
		if e.typ == LclusterNonhead {
			continue
		}
		var nblk uint32
		if !big {
			nblk = 1
			for k := i; k > 0; {
				k--
				if ents[k].typ == LclusterNonhead {
					k -= int(lo[k])
				}
				if k >= 0 {
					nblk++
				}
			}
		} else {
			for k := i; k > 0; {
				k--
				if ents[k].typ == LclusterNonhead {
					if lo[k]&LID0CblkCnt != 0 {
						k--
						nblk += lo[k+1] &^ LID0CblkCnt
						continue
					}
					k -= max(int(lo[k])-2, 0) // always moves back
					continue
				}
				nblk++
			}
		}
		base = e.blk - nblk
		break
	}
	binary.LittleEndian.PutUint32(pack[size-4:], base)
	return append(out, pack[:size]...)
}

// worthIt reports whether storing a whole file compressed (as exts)
// takes less space than storing it uncompressed.
func (c *compressor) worthIt(in *inode, exts []extent, size int) bool {
	if c == nil {
		return false
	}
	bs := c.blksz
	rawCost := size / bs * bs
	if t := size % bs; t > 0 {
		if in.baseSize()+t <= bs {
			rawCost += t
		} else {
			rawCost += bs
		}
	}
	cost := c.metaLen(in, len(exts), c.compact)
	for i, e := range exts {
		if e.fragment {
			cost += e.csize / 3 // compressed with the other tails
			continue
		}
		if i == len(exts)-1 && c.ztail && e.csize < bs {
			cost += e.csize
			continue
		}
		cost += int(e.blocks) * bs
	}
	return cost < rawCost
}
