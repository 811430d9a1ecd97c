// Package lz4 is an LZ4 block encoder for users that need small raw LZ4
// blocks, such as EROFS images, whose pclusters are decompressed by the
// kernel's LZ4 decoder. Levels 1-9 choose sequences as LZ4HC does (a
// hash-chain search with LZ4HC's overlapping-match parse), levels 10-12 by
// optimal parsing (minimum encoded size over the block). EncodeLimit
// encodes the longest prefix of its input that fits a given size, as
// LZ4's "destSize" mode does.
//
// Blocks obey the LZ4 block format's end rules (the last match starts at
// least 12 bytes before the end and the last 5 bytes are literals), so
// every LZ4 decoder, including the kernel's, accepts them.
package lz4

import (
	"encoding/binary"
	"math/bits"
)

const (
	minMatch    = 4
	lastLits    = 5  // the last 5 bytes are always literals
	mfLimit     = 12 // a match starts at least 12 bytes before the end
	maxDistance = 65535
	// sufficientLen: a match this long is taken without looking at the
	// positions it covers.
	sufficientLen = 64
	// maxMatch bounds the length of one match (longer ones are split),
	// so a search never scans more than this.
	maxMatch = 1 << 16
)

// Encoder compresses raw LZ4 blocks. Its zero value is ready to use with
// the default search depth. An Encoder keeps scratch space between calls
// and must not be used concurrently.
type Encoder struct {
	// Depth is the number of hash-chain candidates examined per search
	// (default 256).
	Depth int
	// Optimal selects optimal parsing (smallest blocks, slowest); otherwise
	// sequences are chosen by LZ4HC's hash-chain parse (see encodeHC).
	Optimal bool

	head []int32
	prev []int32
	// hc and base: tables of the hash-chain encoder (see encodeHC).
	hc   *hcTables
	base uint32
	// work counts the hash-chain encoder's steps (see hcMatcher).
	work  int
	price []int32
	step  []seqStep
}

// seqStep records how the cheapest parse reaches a position.
type seqStep struct {
	mlen int32 // 0: a literal
	off  uint16
}

// Level returns an Encoder whose search depth corresponds to an LZ4HC
// compression level from 1 to 12.
func Level(level int) *Encoder {
	if level < 1 {
		level = 9
	}
	// Levels 1-9 examine as many hash-chain candidates per search as
	// LZ4HC's (2 to 256); levels 10-12 parse optimally.
	level = min(level, 12)
	if level >= 10 {
		return &Encoder{Depth: 1 << (level - 4), Optimal: true}
	}
	return &Encoder{Depth: 1 << max(level-1, 1)}
}

// Encode appends the LZ4 block of src to dst.
func (e *Encoder) Encode(dst, src []byte) []byte {
	n := len(src)
	if n < mfLimit+1 {
		return appendLiterals(dst, src)
	}
	depth := e.Depth
	if depth <= 0 {
		depth = 256
	}
	if !e.Optimal {
		out, _ := e.encodeHC(dst, src, depth, -1)
		return out
	}
	hbits := min(16, max(10, bits.Len(uint(n))))
	hsize := 1 << hbits
	if cap(e.head) < hsize {
		e.head = make([]int32, hsize)
	}
	head := e.head[:hsize]
	for i := range head {
		head[i] = -1
	}
	if cap(e.prev) < n {
		e.prev = make([]int32, n)
		e.price = make([]int32, n+1)
		e.step = make([]seqStep, n+1)
	}
	prev := e.prev[:n]
	price := e.price[:n+1]
	step := e.step[:n+1]
	const inf = 1 << 30
	for i := range price {
		price[i] = inf
	}
	price[0] = 0
	shift := uint(32 - hbits)
	hash := func(p int) uint32 {
		return (binary.LittleEndian.Uint32(src[p:]) * 2654435761) >> shift
	}
	matchEnd := n - lastLits // matches end at or before this
	searchEnd := n - mfLimit // matches start before this
	inserted := 0            // positions below this are in the chains
	insert := func(upTo int) {
		for ; inserted < upTo && inserted+4 <= n; inserted++ {
			h := hash(inserted)
			prev[inserted] = head[h]
			head[h] = int32(inserted)
		}
	}
	for p := 0; p < n; p++ {
		// Literal transition (run-length bytes are ignored in the price).
		if c := price[p] + 1; c < price[p+1] {
			price[p+1] = c
			step[p+1] = seqStep{}
		}
		if p >= searchEnd {
			continue
		}
		insert(p)
		// Longest match at p.
		best, bestOff := 0, 0
		maxLen := min(matchEnd-p, maxMatch)
		first := binary.LittleEndian.Uint32(src[p:])
		h := hash(p)
		for c, tries := head[h], depth; c >= 0 && tries > 0; c, tries = prev[c], tries-1 {
			d := p - int(c)
			if d > maxDistance {
				break
			}
			if best >= minMatch && src[int(c)+best] != src[p+best] {
				continue
			}
			if binary.LittleEndian.Uint32(src[c:]) != first {
				continue
			}
			l := minMatch + commonLen(src[int(c)+minMatch:], src[p+minMatch:p+maxLen])
			if l > best {
				best, bestOff = l, d
				if l >= maxLen {
					break
				}
			}
		}
		if best < minMatch {
			continue
		}
		if best >= sufficientLen {
			// Take it: price its end only, and skip the covered positions'
			// searches (they stay reachable as literals).
			if c := price[p] + matchPrice(best); c < price[p+best] {
				price[p+best] = c
				step[p+best] = seqStep{mlen: int32(best), off: uint16(bestOff)}
			}
			insert(p + best)
			for q := p + 1; q <= p+best; q++ {
				if c := price[q-1] + 1; c < price[q] {
					price[q] = c
					step[q] = seqStep{}
				}
			}
			p += best - 1
			continue
		}
		base := price[p]
		for l := minMatch; l <= best; l++ {
			if c := base + matchPrice(l); c < price[p+l] {
				price[p+l] = c
				step[p+l] = seqStep{mlen: int32(l), off: uint16(bestOff)}
			}
		}
	}
	// Walk the cheapest parse back, then emit it forward.
	type seq struct {
		pos, mlen int
		off       uint16
	}
	var seqs []seq
	for p := n; p > 0; {
		s := step[p]
		if s.mlen == 0 {
			p--
			continue
		}
		p -= int(s.mlen)
		seqs = append(seqs, seq{p, int(s.mlen), s.off})
	}
	anchor := 0
	for i := len(seqs) - 1; i >= 0; i-- {
		s := seqs[i]
		dst = appendSequence(dst, src[anchor:s.pos], s.mlen, s.off)
		anchor = s.pos + s.mlen
	}
	return appendLiterals(dst, src[anchor:])
}

// matchPrice is the encoded size of a match of length l with its token.
func matchPrice(l int) int32 {
	c := int32(3)
	if l-minMatch >= 15 {
		c += int32((l-minMatch-15)/255 + 1)
	}
	return c
}

// commonLen returns the length of the common prefix of a and b.
func commonLen(a, b []byte) int {
	if len(a) > len(b) {
		a = a[:len(b)]
	}
	b = b[:len(a)]
	n := 0
	for ; n+8 <= len(a); n += 8 {
		if x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:]); x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return n
}

// commonLenBack returns the length, at most max, of the common suffix
// of src[:i] and src[:j].
func commonLenBack(src []byte, i, j, max int) int {
	n := 0
	for ; n+8 <= max; n += 8 {
		if x := binary.LittleEndian.Uint64(src[i-n-8:]) ^ binary.LittleEndian.Uint64(src[j-n-8:]); x != 0 {
			return n + bits.LeadingZeros64(x)>>3
		}
	}
	for n < max && src[i-n-1] == src[j-n-1] {
		n++
	}
	return n
}

func appendLen(dst []byte, n int) []byte {
	for ; n >= 255; n -= 255 {
		dst = append(dst, 255)
	}
	return append(dst, byte(n))
}

// appendSequence appends literals followed by a match.
func appendSequence(dst, lits []byte, mlen int, off uint16) []byte {
	ll, ml := len(lits), mlen-minMatch
	tok := byte(min(ll, 15))<<4 | byte(min(ml, 15))
	dst = append(dst, tok)
	if ll >= 15 {
		dst = appendLen(dst, ll-15)
	}
	dst = append(dst, lits...)
	dst = append(dst, byte(off), byte(off>>8))
	if ml >= 15 {
		dst = appendLen(dst, ml-15)
	}
	return dst
}

// appendLiterals appends the final literal-only sequence.
func appendLiterals(dst, lits []byte) []byte {
	ll := len(lits)
	dst = append(dst, byte(min(ll, 15))<<4)
	if ll >= 15 {
		dst = appendLen(dst, ll-15)
	}
	return append(dst, lits...)
}

// EncodeLimit appends to dst the LZ4 block of the longest prefix of src
// that encodes in at most limit bytes, and returns the block and the
// length of that prefix (the "destSize" mode of LZ4). Its work is
// proportional to the prefix encoded, not to len(src). Optimal parsing
// encoders compress a prefix that does not fit and keep the sequences
// that do.
func (e *Encoder) EncodeLimit(dst, src []byte, limit int) ([]byte, int) {
	if limit < 1 {
		return dst, 0 // not even an empty block fits
	}
	depth := e.Depth
	if depth <= 0 {
		depth = 256
	}
	if !e.Optimal {
		return e.encodeHC(dst, src, depth, limit)
	}
	// Encode a prefix that probably does not fit, doubling it while it
	// does, and keep the sequences that fit.
	start := len(dst)
	l := min(len(src), 4*max(limit, 64))
	for {
		out := e.Encode(dst, src[:l])
		e.work += l
		if len(out)-start <= limit {
			if l == len(src) {
				return out, l
			}
			l = min(len(src), 2*l)
			continue
		}
		t, used := Truncate(out[start:], src[:l], limit)
		return append(out[:start], t...), used
	}
}

// fitLiterals returns the longest literal run that encodes in room bytes.
func fitLiterals(room int) int {
	k := max(room-1-(room-1)/256, 0)
	for 1+litExtLen(k+1)+k+1 <= room {
		k++
	}
	for k > 0 && 1+litExtLen(k)+k > room {
		k--
	}
	return k
}

func litExtLen(n int) int {
	if n < 15 {
		return 0
	}
	return (n-15)/255 + 1
}

// Truncate cuts a raw LZ4 block blk of src to at most limit bytes: it
// keeps the sequences up to some sequence k, shortens k's match if that
// is what fits (a long run's match can alone be longer than limit, its
// length taking a byte per 255), and appends a final run of at least 12
// literals. It returns the new block and the length of src it decodes to
// (0 if there is no such cut), choosing the cut that decodes to the most.
func Truncate(blk, src []byte, limit int) ([]byte, int) {
	// seq is one sequence: its token at tok, its match length bytes from
	// mlPos (after the offset), the match of ml bytes decoding at mstart.
	type seq struct{ tok, mlPos, mstart, ml int }
	var seqs []seq
	ip, op := 0, 0
	for ip < len(blk) {
		tok := ip
		ip++
		ll := int(blk[tok] >> 4)
		if ll == 15 {
			for ip < len(blk) {
				b := blk[ip]
				ip++
				ll += int(b)
				if b != 255 {
					break
				}
			}
		}
		ip += ll
		op += ll
		if ip >= len(blk) {
			break
		}
		ip += 2
		sq := seq{tok: tok, mlPos: ip, mstart: op}
		ml := int(blk[tok]&15) + minMatch
		if blk[tok]&15 == 15 {
			for ip < len(blk) {
				b := blk[ip]
				ip++
				ml += int(b)
				if b != 255 {
					break
				}
			}
		}
		sq.ml = ml
		seqs = append(seqs, sq)
		op += ml
	}
	// Later sequences decode further, but a shortened match may not: try
	// each, from the last, until no earlier one can do better.
	bestEnd, bestK, bestML, bestN := 0, -2, 0, 0
	for k := len(seqs) - 1; k >= -1; k-- {
		if k >= 0 && seqs[k].mstart+seqs[k].ml+fitLiterals(limit) <= bestEnd {
			break // nothing from here on decodes further
		}
		if k < 0 {
			// Literals only.
			if n := min(len(src), fitLiterals(limit)); n >= mfLimit && n > bestEnd {
				bestEnd, bestK, bestN = n, -1, n
			}
			continue
		}
		sq := seqs[k]
		// The match bytes cost a byte per 255, literals one each: keep as
		// much of the match as leaves room for the shortest final run.
		room := limit - sq.mlPos - (1 + mfLimit)
		if room < 0 {
			continue
		}
		ml := min(sq.ml, maxMatchFor(room), len(src)-sq.mstart-mfLimit)
		if ml < minMatch {
			continue
		}
		n := min(len(src)-sq.mstart-ml, fitLiterals(limit-sq.mlPos-matchExtLen(ml)))
		if n < mfLimit {
			continue
		}
		if end := sq.mstart + ml + n; end > bestEnd {
			bestEnd, bestK, bestML, bestN = end, k, ml, n
		}
	}
	switch {
	case bestK == -2:
		return nil, 0
	case bestK == -1:
		return appendLiterals(nil, src[:bestN]), bestN
	}
	sq := seqs[bestK]
	iend := sq.mstart + bestML
	out := make([]byte, 0, limit)
	out = append(out, blk[:sq.mlPos]...)
	// Re-encode the match length in the token and its extra bytes.
	out[sq.tok] &^= 15
	if v := bestML - minMatch; v >= 15 {
		out[sq.tok] |= 15
		out = appendLen(out, v-15)
	} else {
		out[sq.tok] |= byte(v)
	}
	return appendLiterals(out, src[iend:iend+bestN]), iend + bestN
}

// matchExtLen is the number of bytes after the offset that encode a match
// of ml bytes.
func matchExtLen(ml int) int {
	if ml-minMatch < 15 {
		return 0
	}
	return (ml-minMatch-15)/255 + 1
}

// maxMatchFor returns the longest match whose length takes at most room
// bytes after the offset.
func maxMatchFor(room int) int {
	if room <= 0 {
		return minMatch + 14
	}
	return minMatch + 14 + 255*room
}
