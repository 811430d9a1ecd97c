package lz4

import "encoding/binary"

// The hash-chain encoder of levels 1-9. Positions are indexed by hashes
// of their first 4 bytes: head holds the latest position of each hash,
// and chain, a ring over the last 64 KiB of positions, the distance from
// each position to the previous one with the same hash. Positions are
// stored as base+position, and base grows past every block encoded, so
// entries left by earlier blocks lie below base and are never followed:
// the tables are not cleared between blocks.
//
// Sequences are chosen as LZ4HC does: the longest match at a position is
// compared with the longest matches starting within it (found by
// searching near its end and extending candidates backwards), and
// overlapping matches are shortened so that the one that ends last wins.

const (
	hcHashLog = 15
	// optimalML is the longest match whose length fits in the token.
	optimalML = minMatch + 14
	// hcNice: a search stops at a match this long.
	hcNice = 1024
)

// hcTables are the hash-chain encoder's tables (256 KiB).
type hcTables struct {
	head  [1 << hcHashLog]uint32
	chain [1 << 16]uint16
}

func hcHash(v uint32) uint32 { return v * 2654435761 >> (32 - hcHashLog) }

// hcMatcher finds matches in one block.
type hcMatcher struct {
	src   []byte
	t     *hcTables
	base  uint32
	next  int // positions below next are in the chains
	depth int
	end   int // matches end at or before this
	// work counts chain steps, inserted positions and compared 8-byte
	// words (for tests that bound the encoder's work).
	work int
}

// insert adds the positions below upTo to the chains.
func (m *hcMatcher) insert(upTo int) {
	src, t, base := m.src, m.t, m.base
	p := m.next
	if p >= upTo {
		return
	}
	m.work += upTo - p
	head, chain := &t.head, &t.chain
	for ; p < upTo; p++ {
		h := hcHash(binary.LittleEndian.Uint32(src[p:]))
		idx := base + uint32(p)
		chain[uint16(idx)] = uint16(min(idx-head[h], 65535))
		head[h] = idx
	}
	m.next = upTo
}

// match is a match of length len at start, copying from ref.
type match struct {
	start, ref, len int
}

func (x match) end() int { return x.start + x.len }

// advance drops the first k bytes of x.
func (x *match) advance(k int) {
	x.start += k
	x.ref += k
	x.len -= k
}

// search is the state of one wider search.
type search struct {
	ip, low, longest int
	first            uint32
	best             match
	words            int
}

// wider returns the longest match longer than longest that covers ip,
// found on ip's hash chain and extended backwards down to low at most;
// its len is 0 if there is none.
func (m *hcMatcher) wider(ip, low, longest int) match {
	m.insert(ip)
	src, t, end := m.src, m.t, m.end
	if longest >= end-low {
		return match{}
	}
	first := binary.LittleEndian.Uint32(src[ip:])
	idx := m.base + uint32(ip)
	lowest := m.base
	if idx-lowest > maxDistance {
		lowest = idx - maxDistance
	}
	c := t.head[hcHash(first)]
	if c < lowest {
		return match{}
	}
	// A longer match covers the two bytes at low+longest-1 (as ip-low <
	// longest): a candidate at mp is only compared if the bytes at
	// mp+qoff match those.
	if ip-low >= longest {
		low = ip - longest + 1
	}
	s := search{ip: ip, low: low, longest: longest, first: first}
	qoff := longest - 1 - (ip - low) // >= 0
	tail := binary.LittleEndian.Uint16(src[low+longest-1:])
	base, chain := m.base, &t.chain
	tries := m.depth
	for tries > 0 {
		tries--
		d := uint32(chain[uint16(c)])
		if binary.LittleEndian.Uint16(src[int(c-base)+qoff:]) == tail {
			if r := m.check(&s, int(c-base)); r != 0 {
				if r == stop {
					break
				}
				qoff = s.longest - 1 - (ip - low)
				tail = binary.LittleEndian.Uint16(src[low+s.longest-1:])
			}
		}
		if c-lowest < d {
			break
		}
		c -= d
	}
	m.work += m.depth - tries + s.words
	return s.best
}

// Results of check.
const (
	longer = 1 // a longer match
	stop   = 2 // a match no other can beat
)

// check compares the candidate at mp with s.ip and records it in s if it
// gives a longer match.
//
//go:noinline
func (m *hcMatcher) check(s *search, mp int) int {
	src, end, ip := m.src, m.end, s.ip
	if binary.LittleEndian.Uint32(src[mp:]) != s.first {
		return 0
	}
	f := minMatch + commonLen(src[mp+minMatch:], src[ip+minMatch:end])
	s.words += f >> 3
	back, b := ip-s.low, 0
	if back > 0 {
		b = commonLenBack(src, ip, mp, min(back, mp))
	}
	l := f + b
	if l <= s.longest {
		return 0
	}
	s.longest = l
	s.best = match{ip - b, mp - b, l}
	if l >= hcNice || (ip+f == end && b == back) || l >= end-s.low {
		return stop
	}
	return longer
}

// seqCost is the encoded size of a sequence of ll literals and a match
// of length ml.
func seqCost(ll, ml int) int {
	return 1 + litExtLen(ll) + ll + 2 + litExtLen(ml-minMatch)
}

// minTail is the shortest final literal run after a match of length ml.
func minTail(ml int) int {
	return max(lastLits, mfLimit-ml)
}

// encodeHC appends the block of src to dst, or with limit >= 0 that of
// the longest prefix it can fit in limit bytes, and returns the block and
// the length of the prefix encoded.
func (e *Encoder) encodeHC(dst, src []byte, depth, limit int) ([]byte, int) {
	n := len(src)
	if n < mfLimit+1 {
		k := n
		if limit >= 0 && 1+litExtLen(n)+n > limit {
			k = fitLiterals(limit)
		}
		return appendLiterals(dst, src[:k]), k
	}
	// Positions past maxSearch (1 GiB) are not searched: they go out
	// as literals, so that base+position fits 32 bits.
	const maxSearch = 1 << 30
	if e.hc == nil {
		e.hc = new(hcTables)
		e.base = 1
	}
	if e.base > 1<<31 {
		clear(e.hc.head[:])
		e.base = 1
	}
	m := hcMatcher{src: src, t: e.hc, base: e.base, depth: depth, end: n - lastLits}
	e.base += uint32(min(n, maxSearch)) + 1
	room := 1 << 62 // bytes left for the rest of the block
	maxLits := room // longest final literal run that fits
	if limit >= 0 {
		room = limit
		maxLits = fitLiterals(room)
	}
	mflimit := min(n-mfLimit, maxSearch) // matches start at or before this
	anchor, ip := 0, 0

	// emit appends x with the literals before it, if it leaves room for
	// a final literal run; otherwise it returns false.
	emit := func(x match) bool {
		ll := x.start - anchor
		if c := seqCost(ll, x.len); c+1+minTail(x.len) <= room {
			dst = appendSequence(dst, src[anchor:x.start], x.len, uint16(x.start-x.ref))
			room -= c
			if limit >= 0 {
				maxLits = fitLiterals(room)
			}
			anchor = x.end()
			ip = anchor
			return true
		}
		return false
	}
	// full ends a block that has no room for x: it keeps the most input
	// of a shortened x followed by literals, or literals alone.
	full := func(x match) ([]byte, int) {
		ll := x.start - anchor
		used := min(n, anchor+maxLits)
		avail := room - (1 + litExtLen(ll) + ll + 2) - 1 - lastLits
		if avail >= 0 {
			ml := min(x.len, optimalML+255*avail)
			if ml >= minMatch {
				if c := seqCost(ll, ml); c+1+minTail(ml) <= room && min(n, x.start+ml+fitLiterals(room-c)) > used {
					dst = appendSequence(dst, src[anchor:x.start], ml, uint16(x.start-x.ref))
					room -= c
					anchor = x.start + ml
					used = min(n, anchor+fitLiterals(room))
				}
			}
		}
		e.work += m.work
		return appendLiterals(dst, src[anchor:used]), used
	}

	var m0, m1, m2, m3 match
	for ip <= mflimit {
		if ip-anchor > maxLits {
			// Literals alone fill the block.
			break
		}
		m1 = m.wider(ip, ip, minMatch-1)
		if m1.len == 0 {
			ip++
			continue
		}
		m0 = m1
	search2:
		m2 = match{}
		if m1.end() <= mflimit {
			m2 = m.wider(m1.end()-2, m1.start, m1.len)
		}
		if m2.len == 0 {
			if !emit(m1) {
				return full(m1)
			}
			continue
		}
		if m0.start < m1.start && m2.start < m1.start+m0.len {
			// m2 starts within the first match found: keep that one.
			m1 = m0
		}
		if m2.start-m1.start < 3 {
			// m1 is too short before m2: drop it.
			m1 = m2
			goto search2
		}
	search3:
		// Shorten m2 so that m1 keeps up to optimalML bytes.
		if m2.start-m1.start < optimalML {
			l := min(m1.len, optimalML)
			if m1.start+l > m2.end()-minMatch {
				l = m2.start - m1.start + m2.len - minMatch
			}
			if k := l - (m2.start - m1.start); k > 0 {
				m2.advance(k)
			}
		}
		m3 = match{}
		if m2.end() <= mflimit {
			m3 = m.wider(m2.end()-3, m2.start, m2.len)
		}
		if m3.len == 0 {
			// Emit m1, cut at m2, and m2.
			if m2.start < m1.end() {
				m1.len = m2.start - m1.start
			}
			if !emit(m1) {
				return full(m1)
			}
			if !emit(m2) {
				return full(m2)
			}
			continue
		}
		if m3.start < m1.end()+3 {
			// No room for m2 between m1 and m3.
			if m3.start >= m1.end() {
				// m1 can go out: m3 becomes the first match.
				if m2.start < m1.end() {
					m2.advance(m1.end() - m2.start)
					if m2.len < minMatch {
						m2 = m3
					}
				}
				if !emit(m1) {
					return full(m1)
				}
				m1, m0 = m3, m2
				goto search2
			}
			m2 = m3
			goto search3
		}
		// m1 < m2 < m3: emit m1, cut where m2 takes over.
		if m2.start < m1.end() {
			if m2.start-m1.start < optimalML {
				m1.len = min(m1.len, optimalML)
				if m1.end() > m2.end()-minMatch {
					m1.len = m2.start - m1.start + m2.len - minMatch
				}
				if k := m1.end() - m2.start; k > 0 {
					m2.advance(k)
				}
			} else {
				m1.len = m2.start - m1.start
			}
		}
		if !emit(m1) {
			return full(m1)
		}
		m1, m2 = m2, m3
		goto search3
	}
	e.work += m.work
	k := min(n-anchor, maxLits)
	return appendLiterals(dst, src[anchor:anchor+k]), anchor + k
}
