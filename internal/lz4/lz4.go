// Package lz4 is an LZ4 block encoder that chooses its sequences by
// optimal parsing (minimum encoded size over the block, given the
// matches found by a hash-chain search), for users that need smaller raw
// LZ4 blocks than a greedy high-compression encoder gives, such as EROFS
// images, whose pclusters are decompressed by the kernel's LZ4 decoder.
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
	// niceLen: the lazy encoder stops searching at a match this long.
	niceLen = 128
	// maxMatch bounds the length of one match (longer ones are split),
	// so a search never scans more than this.
	maxMatch = 1 << 16
)

// Encoder compresses raw LZ4 blocks. Its zero value is ready to use with
// the default search depth. An Encoder keeps scratch space between calls
// and must not be used concurrently.
type Encoder struct {
	// Depth is the number of hash-chain candidates examined per position
	// (default 64).
	Depth int
	// Optimal selects optimal parsing (smallest blocks, slowest); otherwise
	// sequences are chosen greedily with lazy matching, as LZ4HC does.
	Optimal bool

	head []int32
	prev []int32
	// lazyHead and base: hash heads of the lazy encoder (see encodeLazy).
	lazyHead []int32
	base     int32
	price    []int32
	step     []seqStep
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
	// Levels 1-9 parse lazily with 2^(level-3) candidates per position
	// (level 9: 64; LZ4HC examines 256, for about 0.4% smaller blocks at
	// 1.5 times the time here); levels 10-12 parse optimally.
	level = min(level, 12)
	if level >= 10 {
		return &Encoder{Depth: 1 << (level - 4), Optimal: true}
	}
	return &Encoder{Depth: 1 << max(level-3, 0)}
}

// Encode appends the LZ4 block of src to dst.
func (e *Encoder) Encode(dst, src []byte) []byte {
	n := len(src)
	if n < mfLimit+1 {
		return appendLiterals(dst, src)
	}
	depth := e.Depth
	if depth <= 0 {
		depth = 64
	}
	if !e.Optimal {
		out, _ := e.encodeLazy(dst, src, depth, -1)
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

func commonLen(a, b []byte) int {
	n := 0
	for len(b)-n >= 8 && len(a)-n >= 8 {
		x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < len(b) && n < len(a) && a[n] == b[n] {
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
// length of that prefix (the "destSize" mode of LZ4). Optimal parsing
// encoders compress src whole and keep the sequences that fit.
func (e *Encoder) EncodeLimit(dst, src []byte, limit int) ([]byte, int) {
	depth := e.Depth
	if depth <= 0 {
		depth = 64
	}
	if !e.Optimal {
		return e.encodeLazy(dst, src, depth, limit)
	}
	start := len(dst)
	out := e.Encode(dst, src)
	if len(out)-start <= limit {
		return out, len(src)
	}
	t, used := Truncate(out[start:], src, limit)
	return append(out[:start], t...), used
}

// encodeLazy chooses sequences greedily: the longest match at each
// position, unless the next position holds a longer one. With limit >= 0
// it stops before the block would exceed limit bytes.
func (e *Encoder) encodeLazy(dst, src []byte, depth, limit int) ([]byte, int) {
	n := len(src)
	if n < mfLimit+1 {
		if limit >= 0 && 1+litExtLen(n)+n > limit {
			k := fitLiterals(limit)
			return appendLiterals(dst, src[:k]), k
		}
		return appendLiterals(dst, src), n
	}
	start := len(dst)
	expect := n
	if limit >= 0 {
		expect = min(n, 16*limit)
	}
	hbits := min(16, max(10, bits.Len(uint(expect))))
	hsize := 1 << hbits
	// The hash heads hold positions plus base; entries left from earlier
	// calls lie below base and so are never taken, so no clearing is needed.
	if len(e.lazyHead) < 1<<16 {
		e.lazyHead = make([]int32, 1<<16)
		e.base = 1
	}
	if e.base > 1<<30 {
		clear(e.lazyHead)
		e.base = 1
	}
	base := e.base
	e.base += int32(n) + 1
	head := e.lazyHead[:hsize]
	if cap(e.prev) < n {
		e.prev = make([]int32, n)
	}
	prev := e.prev[:n]
	shift := uint(32 - hbits)
	matchEnd := n - lastLits
	searchEnd := n - mfLimit
	inserted := 0
	insert := func(upTo int) {
		for ; inserted < upTo; inserted++ {
			h := (binary.LittleEndian.Uint32(src[inserted:]) * 2654435761) >> shift
			prev[inserted] = head[h]
			head[h] = int32(inserted) + base
		}
	}
	longest := func(p int) (int, int) {
		insert(p)
		best, bestOff := 0, 0
		maxLen := min(matchEnd-p, maxMatch)
		first := binary.LittleEndian.Uint32(src[p:])
		h := (first * 2654435761) >> shift
		if b := byte(first); first == uint32(b)*0x01010101 && p > 0 && src[p-1] == b {
			// Inside a run of one byte: offset 1 is as good as any
			// candidate once the run is long.
			best, bestOff = minMatch+commonLen(src[p-1+minMatch:], src[p+minMatch:p+maxLen]), 1
			if best >= sufficientLen {
				return best, bestOff
			}
		}
		for c, tries := head[h]-base, depth; c >= 0 && tries > 0; c, tries = prev[c]-base, tries-1 {
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
				if l >= maxLen || l >= niceLen {
					break
				}
			}
		}
		return best, bestOff
	}
	anchor := 0
	p := 0
	for p < searchEnd {
		ml, off := longest(p)
		if ml < minMatch {
			p++
			continue
		}
		// Lazy matching: prefer a longer match starting one byte later.
		for p+1 < searchEnd && ml < sufficientLen {
			ml2, off2 := longest(p + 1)
			if ml2 <= ml {
				break
			}
			p, ml, off = p+1, ml2, off2
		}
		if limit >= 0 {
			ll := p - anchor
			size := 1 + litExtLen(ll) + ll + 2
			if ml-minMatch >= 15 {
				size += (ml-minMatch-15)/255 + 1
			}
			// Keep room for a final run of at least 12 literals.
			if len(dst)-start+size > limit-14 {
				break
			}
		}
		dst = appendSequence(dst, src[anchor:p], ml, uint16(off))
		p += ml
		anchor = p
	}
	rest := n - anchor
	if limit >= 0 {
		if room := limit - (len(dst) - start); 1+litExtLen(rest)+rest > room {
			rest = fitLiterals(room)
		}
	}
	return appendLiterals(dst, src[anchor:anchor+rest]), anchor + rest
}

// fitLiterals returns the longest literal run that encodes in room bytes.
func fitLiterals(room int) int {
	k := max(room-1, 0)
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

// Truncate cuts a raw LZ4 block blk of src after the last sequence that
// leaves room, within limit bytes, for a final run of at least 12
// literals, appends that run, and returns the new block and the length of
// src it decodes to (0 if there is no such cut).
func Truncate(blk, src []byte, limit int) ([]byte, int) {
	type seq struct{ cend, iend, mstart int }
	var seqs []seq
	ip, op := 0, 0
	for ip < len(blk) {
		tok := blk[ip]
		ip++
		ll := int(tok >> 4)
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
		ml := int(tok&15) + minMatch
		if tok&15 == 15 {
			for ip < len(blk) {
				b := blk[ip]
				ip++
				ml += int(b)
				if b != 255 {
					break
				}
			}
		}
		seqs = append(seqs, seq{ip, op + ml, op})
		op += ml
	}
	for k := len(seqs) - 1; k >= -1; k-- {
		cend, iend, mstart := 0, 0, 0
		if k >= 0 {
			cend, iend, mstart = seqs[k].cend, seqs[k].iend, seqs[k].mstart
		}
		n := min(len(src)-iend, fitLiterals(limit-cend))
		if n < mfLimit || (k >= 0 && mstart+mfLimit > iend+n) {
			continue
		}
		out := make([]byte, 0, cend+1+litExtLen(n)+n)
		out = append(out, blk[:cend]...)
		return appendLiterals(out, src[iend:iend+n]), iend + n
	}
	return nil, 0
}
