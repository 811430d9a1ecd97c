package squashfs

import (
	"fmt"

	"github.com/closurefs/closurefs/internal/codec"
)

// metaWriter builds one metadata table in memory: uncompressed bytes are
// collected and every full 8 KiB block is compressed at once, so the
// on-disk position of the block being filled is always known.
type metaWriter struct {
	codec  codec.Codec
	buf    []byte   // the block being filled (< MetadataBlockSize bytes)
	out    []byte   // finished blocks, each behind its u16 header
	blocks []uint64 // position in out of each finished block
	total  uint64   // uncompressed bytes written so far
	err    error
	tmp    []byte
}

func newMetaWriter(c codec.Codec) *metaWriter {
	return &metaWriter{codec: c, buf: make([]byte, 0, MetadataBlockSize)}
}

// ref returns the reference of the next byte written: the on-disk offset
// of its block relative to the table start, shifted left by 16, ORed with
// its offset in the uncompressed block.
func (m *metaWriter) ref() uint64 { return inodeRef(uint64(len(m.out)), uint16(len(m.buf))) }

// write appends p to the table.
func (m *metaWriter) write(p []byte) {
	m.total += uint64(len(p))
	for len(p) > 0 {
		n := min(len(p), MetadataBlockSize-len(m.buf))
		m.buf = append(m.buf, p[:n]...)
		p = p[n:]
		if len(m.buf) == MetadataBlockSize {
			m.flush()
		}
	}
}

// flush compresses the pending block, storing it uncompressed when
// compression does not make it smaller.
func (m *metaWriter) flush() {
	if len(m.buf) == 0 {
		return
	}
	m.blocks = append(m.blocks, uint64(len(m.out)))
	comp, err := m.codec.Compress(m.tmp[:0], m.buf)
	if err != nil && m.err == nil {
		m.err = fmt.Errorf("compress metadata block: %w", err)
	}
	m.tmp = comp
	if err == nil && len(comp) < len(m.buf) {
		m.out = le16(m.out, uint16(len(comp)))
		m.out = append(m.out, comp...)
	} else {
		m.out = le16(m.out, uint16(len(m.buf))|metaUncompressed)
		m.out = append(m.out, m.buf...)
	}
	m.buf = m.buf[:0]
}

// finish flushes the last partial block and returns the table's bytes.
func (m *metaWriter) finish() ([]byte, error) {
	m.flush()
	return m.out, m.err
}
