package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// metaBlock is one decompressed metadata block.
type metaBlock struct {
	data []byte
	next uint64 // position of the following block's header
}

// metaBlock reads the metadata block whose header is at pos; the block
// must end at or before limit.
func (rd *Reader) metaBlock(pos, limit uint64) (*metaBlock, error) {
	if limit > rd.end {
		limit = rd.end
	}
	if pos >= limit || limit-pos < 2 {
		return nil, fmt.Errorf("metadata block at %#x outside its table (ends at %#x)", pos, limit)
	}
	mb, err := rd.meta.Get(pos, func() (*metaBlock, int64, error) {
		var hdr [2]byte
		if err := rd.readFull(hdr[:], pos, "metadata block header"); err != nil {
			return nil, 0, err
		}
		h := binary.LittleEndian.Uint16(hdr[:])
		n := uint64(h & 0x7fff)
		if n == 0 || n > MetadataBlockSize {
			return nil, 0, fmt.Errorf("metadata block at %#x: bad on-disk size %d", pos, n)
		}
		buf := make([]byte, n)
		if err := rd.readFull(buf, pos+2, "metadata block"); err != nil {
			return nil, 0, err
		}
		mb := &metaBlock{next: pos + 2 + n}
		if h&0x8000 != 0 {
			mb.data = buf
		} else {
			out, err := rd.codec.Decompress(make([]byte, 0, MetadataBlockSize), buf, MetadataBlockSize)
			if err != nil {
				return nil, 0, fmt.Errorf("metadata block at %#x: %w", pos, err)
			}
			mb.data = out
		}
		return mb, int64(cap(mb.data) + 64), nil
	})
	if err != nil {
		return nil, err
	}
	if mb.next > limit {
		return nil, fmt.Errorf("metadata block at %#x runs past the end of its table at %#x", pos, limit)
	}
	return mb, nil
}

// metaPos is a position in a metadata stream: the absolute position of a
// block header and an offset into the block's uncompressed data.
type metaPos struct {
	block uint64
	off   uint32
}

// cursor reads a metadata stream that may cross block boundaries.
type cursor struct {
	rd    *Reader
	pos   metaPos
	limit uint64 // end of the table
	what  string // for errors: "inode table", "directory table", ...
	base  uint64 // table start, for errors
	tmp   [64]byte
}

func (rd *Reader) cursorAt(what string, base, limit uint64, pos metaPos) *cursor {
	return &cursor{rd: rd, pos: pos, limit: limit, what: what, base: base}
}

func (c *cursor) errorf(format string, args ...any) error {
	return fmt.Errorf("%s block at %#x: %s", c.what, c.pos.block, fmt.Sprintf(format, args...))
}

// read returns the next n bytes. The slice is valid until the next call
// if n <= len(c.tmp); larger reads return a fresh slice.
func (c *cursor) read(n int) ([]byte, error) {
	var out []byte
	if n <= len(c.tmp) {
		out = c.tmp[:0]
	} else {
		out = make([]byte, 0, n)
	}
	for len(out) < n {
		mb, err := c.rd.metaBlock(c.pos.block, c.limit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.what, err)
		}
		if int(c.pos.off) > len(mb.data) {
			return nil, c.errorf("offset %d past the block's %d bytes", c.pos.off, len(mb.data))
		}
		if int(c.pos.off) == len(mb.data) {
			c.pos = metaPos{block: mb.next}
			continue
		}
		k := min(n-len(out), len(mb.data)-int(c.pos.off))
		out = append(out, mb.data[c.pos.off:int(c.pos.off)+k]...)
		c.pos.off += uint32(k)
	}
	return out, nil
}

func (c *cursor) u16() (uint16, error) {
	b, err := c.read(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (c *cursor) u32() (uint32, error) {
	b, err := c.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// wrapErr prefixes err with "squashfs: " unless it already is, or it is
// io.EOF or fs.ErrNotExist, which callers compare with ==.
func wrapErr(err error) error {
	if err == nil || err == io.EOF || err == fs.ErrNotExist || strings.HasPrefix(err.Error(), "squashfs: ") {
		return err
	}
	return fmt.Errorf("squashfs: %w", err)
}

// refString formats an inode or metadata reference as block:offset.
func refString(ref uint64) string {
	return fmt.Sprintf("%#x:%d", ref>>16, ref&0xffff)
}
