package erofs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/closurefs/closurefs/internal/codec"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

// rdPclusterKey identifies decoded pcluster data in the shared cache.
type rdPclusterKey struct {
	pa, plen, llen int64
	alg            int
	skew           int64 // interlaced: block offset of the extent start
}

// pcluster returns the decoded data of e (e.llen bytes), through the cache.
// If dst is not nil (len(dst) == e.llen) and the pcluster is not cached,
// it is decoded straight into dst and not cached: the caller reads it whole.
func (rd *Reader) pcluster(in *rdInode, e *rdExtent, dst []byte) ([]byte, error) {
	key := rdPclusterKey{pa: e.pa, plen: e.plen, llen: e.llen, alg: e.alg}
	if e.alg == algInterlaced {
		key.skew = e.la & (rd.blkSize - 1)
	}
	if dst != nil {
		// Read whole by the caller: decoded straight into dst, not cached.
		if b, ok := rd.pclusters.Peek(key); ok {
			return b, nil
		}
		return dst, rd.decodePcluster(in, e, dst)
	}
	return rd.pclusters.Get(key, func() ([]byte, int64, error) {
		out := make([]byte, e.llen)
		if err := rd.decodePcluster(in, e, out); err != nil {
			return nil, 0, err
		}
		return out, int64(len(out)) + 64, nil
	})
}

// decodePcluster reads and decodes the pcluster of e into out.
func (rd *Reader) decodePcluster(in *rdInode, e *rdExtent, out []byte) error {
	bp, _ := rd.rawBufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer rd.rawBufs.Put(bp)
	if int64(cap(*bp)) < e.plen {
		*bp = make([]byte, e.plen)
	}
	raw := (*bp)[:e.plen]
	if err := rd.readFull(raw, e.pa); err != nil {
		return err
	}
	if err := rd.decode(e, raw, out); err != nil {
		return fmt.Errorf("nid %d: pcluster at byte %d (%s, %d -> %d bytes): %w", in.nid, e.pa, rdAlgLabel(e.alg), e.plen, e.llen, err)
	}
	return nil
}

func rdAlgLabel(alg int) string {
	switch alg {
	case algShifted:
		return "uncompressed"
	case algInterlaced:
		return "interlaced"
	}
	return AlgName(alg)
}

// decode decodes the raw pcluster bytes of e into e.llen bytes.
func (rd *Reader) decode(e *rdExtent, raw, out []byte) error {
	switch e.alg {
	case algShifted:
		if int64(len(raw)) < e.llen {
			return corruptf("uncompressed pcluster too short")
		}
		copy(out, raw)
		return nil
	case algInterlaced:
		if int64(len(raw)) > rd.blkSize || int64(len(raw)) < e.llen {
			return corruptf("interlaced pcluster of %d bytes", len(raw))
		}
		skip := e.la & (rd.blkSize - 1)
		right := min(rd.blkSize-skip, e.llen)
		if skip+right > int64(len(raw)) {
			return corruptf("interlaced pcluster of %d bytes", len(raw))
		}
		copy(out, raw[skip:skip+right])
		copy(out[right:], raw[:e.llen-right])
		return nil
	}
	src := raw
	if e.alg != AlgLZ4 || rd.incompat&FeatureIncompatZeroPadding != 0 {
		i := 0
		for i < len(src) && src[i] == 0 {
			i++
		}
		if i == len(src) {
			return corruptf("pcluster holds only zeros")
		}
		src = src[i:]
	}
	switch e.alg {
	case AlgLZ4:
		partial := e.partial || rd.incompat&FeatureIncompatZeroPadding == 0
		if !partial {
			// The assembly decoder is several times faster; the
			// portable one below gives the precise error.
			if n, err := lz4.UncompressBlock(src, out); err == nil && n == len(out) {
				return nil
			}
		}
		return lz4Decode(out, src, partial)
	case AlgDeflate:
		if e.partial {
			return rdReadPrefix(out, flate.NewReader(bytes.NewReader(src)))
		}
		return rd.decodeCodec("deflate", out, src)
	case AlgZstd:
		if e.partial {
			d, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(rdMaxExtentSize))
			if err != nil {
				return err
			}
			defer d.Close()
			return rdReadPrefix(out, d)
		}
		return rd.decodeCodec("zstd", out, src)
	case AlgLZMA:
		return decodeMicroLZMA(out, src)
	}
	return fmt.Errorf("unsupported algorithm %d", e.alg)
}

// rdReadPrefix fills out from r, the decoder of a partially referenced
// pcluster.
func rdReadPrefix(out []byte, r io.Reader) error {
	if _, err := io.ReadFull(r, out); err != nil {
		return corruptf("decoded data shorter than %d bytes: %v", len(out), err)
	}
	return nil
}

func (rd *Reader) decodeCodec(name string, out, src []byte) error {
	c, err := rd.codec(name)
	if err != nil {
		return err
	}
	got, err := c.Decompress(out[:0], src, len(out))
	if err != nil {
		if errors.Is(err, codec.ErrTooLarge) {
			return corruptf("decodes to more than %d bytes", len(out))
		}
		return corruptf("%v", err)
	}
	if len(got) != len(out) {
		return corruptf("decodes to %d bytes, want %d", len(got), len(out))
	}
	if len(got) > 0 && &got[0] != &out[0] {
		copy(out, got)
	}
	return nil
}

func (rd *Reader) codec(name string) (codec.Codec, error) {
	rd.codecMu.Lock()
	defer rd.codecMu.Unlock()
	if c, ok := rd.codecs[name]; ok {
		return c, nil
	}
	c, err := codec.New(name, 0)
	if err != nil {
		return nil, err
	}
	if rd.codecs == nil {
		rd.codecs = map[string]codec.Codec{}
	}
	rd.codecs[name] = c
	return c, nil
}

// decodeMicroLZMA decodes an erofs MicroLZMA pcluster (the xz project's
// microlzma format: a raw LZMA stream without end marker whose first byte,
// always zero in LZMA, is replaced by the inverted properties byte) into
// out, whose length is the decoded size. It rebuilds a classic .lzma
// header for the decoder.
func decodeMicroLZMA(out, src []byte) error {
	if len(src) < 2 {
		return corruptf("lzma: pcluster too short")
	}
	props := ^src[0]
	if props >= 9*5*5 {
		return corruptf("lzma: bad properties byte %#x", src[0])
	}
	var hdr [lzma.HeaderLen + 1]byte
	hdr[0] = props
	binary.LittleEndian.PutUint32(hdr[1:], uint32(max(len(out), lzma.MinDictCap)))
	binary.LittleEndian.PutUint64(hdr[5:], uint64(len(out)))
	// hdr[13] is the range coder's leading zero byte.
	r, err := lzma.ReaderConfig{DictCap: max(len(out), lzma.MinDictCap)}.NewReader(io.MultiReader(bytes.NewReader(hdr[:]), bytes.NewReader(src[1:])))
	if err != nil {
		return corruptf("lzma: %v", err)
	}
	if _, err := io.ReadFull(r, out); err != nil {
		return corruptf("lzma: decoded data shorter than %d bytes: %v", len(out), err)
	}
	return nil
}

var (
	errLZ4Truncated = corruptf("lz4: truncated input")
	errLZ4Offset    = corruptf("lz4: match offset out of range")
	errLZ4Overrun   = corruptf("lz4: output longer than expected")
	errLZ4Short     = corruptf("lz4: output shorter than expected")
)

// lz4Decode decodes the raw LZ4 block src into dst, which has the exact
// decoded length. If partial, decoding stops once dst is full (the
// block may decode to more, or hold trailing bytes); otherwise src must
// decode to exactly len(dst) bytes.
func lz4Decode(dst, src []byte, partial bool) error {
	si, di := 0, 0
	for {
		if si >= len(src) {
			return errLZ4Truncated
		}
		tok := src[si]
		si++
		lit := int(tok >> 4)
		if lit == 15 {
			for {
				if si >= len(src) {
					return errLZ4Truncated
				}
				b := src[si]
				si++
				lit += int(b)
				if b != 255 {
					break
				}
			}
		}
		if lit > len(src)-si {
			return errLZ4Truncated
		}
		if lit > len(dst)-di {
			if !partial {
				return errLZ4Overrun
			}
			copy(dst[di:], src[si:])
			return nil
		}
		copy(dst[di:], src[si:si+lit])
		si += lit
		di += lit
		if si == len(src) {
			if di == len(dst) {
				return nil
			}
			return errLZ4Short
		}
		if partial && di == len(dst) {
			return nil
		}
		if si+2 > len(src) {
			return errLZ4Truncated
		}
		off := int(src[si]) | int(src[si+1])<<8
		si += 2
		if off == 0 || off > di {
			return errLZ4Offset
		}
		ml := int(tok & 15)
		if ml == 15 {
			for {
				if si >= len(src) {
					return errLZ4Truncated
				}
				b := src[si]
				si++
				ml += int(b)
				if b != 255 {
					break
				}
			}
		}
		ml += 4
		if ml > len(dst)-di {
			if !partial {
				return errLZ4Overrun
			}
			ml = len(dst) - di
		}
		m := di - off
		for ml > 0 {
			n := copy(dst[di:di+ml], dst[m:di])
			di += n
			ml -= n
		}
		if partial && di == len(dst) {
			return nil
		}
	}
}
