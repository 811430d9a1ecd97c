package erofs

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"hash/crc32"
)

// contentSum digests the bytes written into an image, for the volume UUID
// derived from the content. Hashing every byte with SHA-256 cost the
// writer's single emitting goroutine about a fifth of an uncompressed
// image's time; instead each 64 KiB of the stream is summed with CRC-32C
// (hardware-accelerated, an order of magnitude faster) and the sums are
// hashed with SHA-256. Any change of content changes the UUID but with a
// chance of 2^-32 per changed chunk, and the sum depends only on the bytes
// and their order, not on how they are split into writes. The parallel
// writer of uncompressed data sums each file's 64 KiB pieces on its
// workers and records the sums in walk order (record).
type contentSum struct {
	h   hash.Hash
	crc uint32 // of the current chunk so far
	n   int    // bytes in the current chunk
	buf [8]byte
}

// contentChunk is how many stream bytes each CRC-32C covers.
const contentChunk = 64 << 10

func newContentSum() *contentSum { return &contentSum{h: sha256.New()} }

// Write adds p to the content.
func (s *contentSum) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), contentChunk-s.n)
		s.crc = crc32.Update(s.crc, castagnoli, p[:k])
		s.n += k
		p = p[k:]
		if s.n == contentChunk {
			s.flush()
		}
	}
	return n, nil
}

// record adds a chunk summed elsewhere: the CRC-32C sum of n bytes. A
// stream chunk in progress is ended first, so records and writes mix in
// the order they are made.
func (s *contentSum) record(sum uint32, n int) {
	if s.n > 0 {
		s.flush()
	}
	s.crc, s.n = sum, n
	s.flush()
}

// flush hashes the current chunk's sum and length.
func (s *contentSum) flush() {
	binary.LittleEndian.PutUint32(s.buf[:4], s.crc)
	binary.LittleEndian.PutUint32(s.buf[4:], uint32(s.n))
	s.h.Write(s.buf[:])
	s.crc, s.n = 0, 0
}

// Sum appends the digest of everything written to b.
func (s *contentSum) Sum(b []byte) []byte {
	if s.n > 0 {
		s.flush()
	}
	return s.h.Sum(b)
}
