package zstdenc

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// match is a candidate found by the match finder at some position.
type match struct {
	len, off uint32
}

// node is the cheapest known way to reach a position of the block. The
// repeat offsets at a position follow from its path; the parser keeps
// them apart (Encoder.reps) once the position is final.
type node struct {
	price  int32  // in 1/256 bits
	litLen uint32 // literals since the last match on the path
	mlen   uint32 // length of the match that ends here (0: a literal)
	offVal uint32 // offset value that match is coded with
}

const (
	infPrice  = math.MaxInt32 / 2
	maxDist3  = 1 << 16 // farthest 3-byte match the hash3 table offers
	hash3Log  = 14
	minMatch  = 3
	litMaxBit = 11 // Huffman codes are at most 11 bits
)

// reset prepares the match finder for an input of n bytes.
func (e *Encoder) reset(n int) {
	hl := min(max(bits.Len(uint(n))-18+14, 10), 14)
	if cap(e.head) < 1<<hl {
		e.head = make([]int32, 1<<hl)
	}
	e.head = e.head[:1<<hl]
	clear(e.head)
	if e.head3 == nil {
		e.head3 = make([]int32, 1<<hash3Log)
	}
	clear(e.head3)
	if e.p.Rows > 0 {
		e.rowLog = uint(min(max(bits.Len(uint(n))-4, 8), 13))
		rows := 1 << e.rowLog
		if cap(e.rows) < rows*8 {
			e.rows = make([]int32, rows*8)
			e.rowHead = make([]uint8, rows)
			e.tags = make([]uint64, rows)
		}
		e.rows, e.rowHead, e.tags = e.rows[:rows*8], e.rowHead[:rows], e.tags[:rows]
		clear(e.rows)
		clear(e.rowHead)
		clear(e.tags)
		return
	}
	if cap(e.son) < 2*n {
		e.son = make([]int32, 2*n)
	}
	e.son = e.son[:2*n]
}

// rowHash returns the row of the 4 bytes at b and a tag byte from other
// bits of their hash.
func (e *Encoder) rowHash(b []byte) (int, uint64) {
	h := binary.LittleEndian.Uint32(b) * 2654435761
	return int(h >> (32 - e.rowLog)), uint64(byte(h >> (24 - e.rowLog)))
}

// rowInsert adds position p to its row.
func (e *Encoder) rowInsert(src []byte, p int) {
	h, tag := e.rowHash(src[p:])
	k := (e.rowHead[h] - 1) & 7
	e.rowHead[h] = k
	e.rows[h*8+int(k)] = int32(p + 1)
	sh := 8 * uint(k)
	e.tags[h] = e.tags[h]&^(0xFF<<sh) | tag<<sh
}

// rowFind records the matches at p among the 8 recent positions of its
// row whose tag matches, nearest first, then adds p to the row.
func (e *Encoder) rowFind(src []byte, p, limit, best int) int {
	h, tag := e.rowHash(src[p:])
	k0 := e.rowHead[h]
	row := e.rows[h*8 : h*8+8]
	a := src[p : p+limit]
	first := binary.LittleEndian.Uint32(a)
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	x := e.tags[h] ^ tag*lo
	m := (x - lo) &^ x & hi // a high bit for each byte of x that may be 0
	m = bits.RotateLeft64(m, -8*int(k0))
	for m != 0 {
		j := uint8(bits.TrailingZeros64(m) >> 3)
		m &= m - 1
		c := int(row[(k0+j)&7]) - 1
		if c < 0 || binary.LittleEndian.Uint32(src[c:]) != first {
			continue
		}
		l := 4 + matchLen(src[c+4:], a[4:])
		if l > best {
			best = l
			e.record(l, p, c)
			if l == limit {
				break
			}
		}
	}
	k := (k0 - 1) & 7
	e.rowHead[h] = k
	row[k] = int32(p + 1)
	sh := 8 * uint(k)
	e.tags[h] = e.tags[h]&^(0xFF<<sh) | tag<<sh
	return best
}

func (e *Encoder) hash4(b []byte) uint32 {
	return (binary.LittleEndian.Uint32(b) * 2654435761) >> (32 - uint(bits.Len(uint(len(e.head)))-1))
}

func hash3(b []byte) uint32 {
	v := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	return (v * 506832829) >> (32 - hash3Log)
}

// matchLen returns the length of the common prefix of a and b (len(b) <=
// len(a) is not required; the shorter bounds it).
func matchLen(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i+8 <= n {
		x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:])
		if x != 0 {
			return i + bits.TrailingZeros64(x)>>3
		}
		i += 8
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// insertRange adds positions [from, to) to the match finder without
// searching.
func (e *Encoder) insertRange(src []byte, from, to int) {
	for p := from; p < to; p++ {
		if limit := min(len(src)-p, e.p.Nice); limit >= 4 {
			if e.p.Rows > 0 {
				e.rowInsert(src, p)
			} else {
				e.bt(src, p, limit, false, minMatch-1)
			}
		}
	}
}

// bt inserts position p into the binary tree of its hash bucket,
// comparing at most limit bytes (limit >= 4, p+limit <= len(src)). With
// rec it appends to e.matches every match longer than all found before
// (bestLen at the start), cut at e.blockEnd; it returns the longest
// length found (not cut).
//
// The tree is ordered by the first limit bytes of each position; where
// limits differ (near the end of the input) the order can be slightly
// off, so a recorded match's length is checked before it is trusted.
func (e *Encoder) bt(src []byte, p, limit int, rec bool, bestLen int) int {
	h := e.hash4(src[p:])
	cur := int(e.head[h]) - 1
	e.head[h] = int32(p + 1)
	son := e.son
	lo, hi := 2*p, 2*p+1 // slots for the next smaller / larger node
	len0, len1 := 0, 0   // common prefix with the smaller / larger side
	a := src[p : p+limit]
	for depth := e.p.Depth; ; depth-- {
		if cur < 0 || depth == 0 {
			son[lo], son[hi] = 0, 0
			return bestLen
		}
		l := min(len0, len1)
		l += matchLen(src[cur+l:], a[l:])
		if l > bestLen {
			bestLen = l
			if rec {
				if m := min(len0, len1); m > 0 && matchLen(src[cur:cur+m], a[:m]) < m {
					l = matchLen(src[cur:], a)
				}
				e.record(l, p, cur)
			}
		}
		if l == limit {
			son[lo], son[hi] = son[2*cur], son[2*cur+1]
			return bestLen
		}
		if src[cur+l] < a[l] {
			son[lo] = int32(cur + 1)
			lo = 2*cur + 1
			cur = int(son[2*cur+1]) - 1
			len0 = l
		} else {
			son[hi] = int32(cur + 1)
			hi = 2 * cur
			cur = int(son[2*cur]) - 1
			len1 = l
		}
	}
}

// record appends a match of length l at p from cur, cut at the block
// end, if it is longer than the last one recorded for p.
func (e *Encoder) record(l, p, cur int) {
	l = min(l, e.blockEnd-p)
	if l < minMatch {
		return
	}
	if n := len(e.matches); n > e.first && int(e.matches[n-1].len) >= l {
		return
	}
	e.matches = append(e.matches, match{uint32(l), uint32(p - cur)})
}

// find records the matches at position p (increasing length) and
// returns the longest length.
// A match reaching the tree's compare limit is extended to its full
// length within the block.
func (e *Encoder) find(src []byte, p, limit int) int {
	e.first = len(e.matches)
	best := minMatch - 1
	h3 := hash3(src[p:])
	c3 := int(e.head3[h3]) - 1
	e.head3[h3] = int32(p + 1)
	if c3 >= 0 && p-c3 <= maxDist3 && !e.p.NoHash3 {
		if l := matchLen(src[c3:], src[p:p+limit]); l >= minMatch {
			e.record(l, p, c3)
			best = l
		}
	}
	if e.p.Rows > 0 {
		best = e.rowFind(src, p, limit, best)
	} else {
		best = e.bt(src, p, limit, true, best)
	}
	if n := len(e.matches); n > e.first && best >= limit {
		m := &e.matches[n-1]
		m.len = uint32(matchLen(src[p-int(m.off):], src[p:e.blockEnd]))
		return int(m.len)
	}
	return min(best, e.blockEnd-p)
}

// prices holds symbol prices in 1/256 bits.
type prices struct {
	lit [256]int32
	ll  [36]int32
	ml  [53]int32
	of  [maxOfCode + 1]int32
}

func (pr *prices) llPrice(l uint32) int32 {
	c := llCode(l)
	return pr.ll[c] + int32(llBits[c])<<8
}

// setFromHist prices each symbol by -log2 of its smoothed frequency,
// capped at maxBits.
func setFromHist(dst []int32, hist []uint32, maxBits float64) {
	total := 0.0
	for _, c := range hist {
		total += float64(c) + 0.5
	}
	for s, c := range hist {
		b := math.Log2(total / (float64(c) + 0.5))
		dst[s] = int32(math.Min(b, maxBits) * 256)
	}
}

// setFromNorm prices symbols by a normalized distribution.
func setFromNorm(dst []int32, norm []int16, log uint) {
	for s := range dst {
		n := 0.0
		if s < len(norm) {
			n = float64(norm[s])
		}
		if n <= 0 {
			n = 1
		}
		dst[s] = int32((float64(log) - math.Log2(n)) * 256)
	}
}

// repOffset returns the offset that repeat code k (0-2) stands for after
// a run of literals (ll0: no literals).
func repOffset(r [3]uint32, k int, ll0 bool) uint32 {
	if !ll0 {
		return r[k]
	}
	if k == 2 {
		return r[0] - 1
	}
	return r[k+1]
}

// offsetValue returns the offset value coding off after reps r.
func offsetValue(r [3]uint32, off uint32, ll0 bool) uint32 {
	if !ll0 {
		switch off {
		case r[0]:
			return 1
		case r[1]:
			return 2
		case r[2]:
			return 3
		}
	} else {
		switch off {
		case r[1]:
			return 1
		case r[2]:
			return 2
		case r[0] - 1:
			return 3
		}
	}
	return off + 3
}

// updateReps returns the repeat offsets after a match coded ov.
func updateReps(r [3]uint32, ov uint32, ll0 bool) [3]uint32 {
	if ov > 3 {
		return [3]uint32{ov - 3, r[0], r[1]}
	}
	k := ov - 1
	if ll0 {
		k++
	}
	switch k {
	case 0:
		return r
	case 1:
		return [3]uint32{r[1], r[0], r[2]}
	case 2:
		return [3]uint32{r[2], r[0], r[1]}
	default:
		return [3]uint32{r[0] - 1, r[0], r[1]}
	}
}

// parse chooses the sequences of block src[start:end], updating reps.
func (e *Encoder) parse(src []byte, start, end int, reps *[3]uint32) ([]seq, []byte) {
	if e.p.Lazy {
		return e.lazy(src, start, end, reps)
	}
	n := end - start
	e.blockEnd = end
	pr := &e.prices
	var hist [256]uint32
	for _, b := range src[start:end] {
		hist[b]++
	}
	if f := e.p.LitFlat; f > 0 {
		// Literals are the bytes matches miss: flatter than the block.
		add := uint32(f * (end - start) / 256 / 16)
		for i := range hist {
			hist[i] += add
		}
	}
	setFromHist(pr.lit[:], hist[:], litMaxBit)
	if e.p.Predefined {
		setFromNorm(pr.ll[:], llDefault, llDefaultLog)
		setFromNorm(pr.ml[:], mlDefault, mlDefaultLog)
		setFromNorm(pr.of[:], ofDefault, ofDefaultLog)
	} else {
		setFromHist(pr.ll[:], llPrior[:], llMaxLog)
		setFromHist(pr.ml[:], mlPrior[:], mlMaxLog)
		setFromHist(pr.of[:], ofPrior[:], ofMaxLog)
	}
	if e.p.Passes == 1 && !e.p.Greedy {
		// One pass: search each position as the parser reaches it,
		// keeping no match lists.
		e.optimal(src, start, end, *reps, true)
		seqs, lits := e.backtrack(src, start, end)
		*reps = e.repsAt(n, *reps)
		return seqs, lits
	}
	if cap(e.mstart) < n+1 {
		e.mstart = make([]int32, n+1)
		e.skip = make([]bool, n+1)
	}
	e.mstart, e.skip = e.mstart[:n+1], e.skip[:n+1]
	e.matches = e.matches[:0]
	skipUntil := start
	for p := start; p < end; p++ {
		i := p - start
		e.mstart[i] = int32(len(e.matches))
		e.skip[i] = p < skipUntil
		if best := e.search(src, p, e.skip[i]); best >= e.p.Nice {
			skipUntil = p + best
		}
	}
	e.mstart[n] = int32(len(e.matches))
	if e.p.Greedy {
		// A quick greedy parse of the stored matches gives the symbol
		// statistics that price the optimal parse.
		e.greedy(src, start, end, *reps)
		e.setPrices(e.seqs, e.lits)
	}
	for pass := 1; ; pass++ {
		e.optimal(src, start, end, *reps, false)
		seqs, lits := e.backtrack(src, start, end)
		if pass >= e.p.Passes {
			*reps = e.repsAt(n, *reps)
			return seqs, lits
		}
		e.setPrices(seqs, lits)
	}
}

// search adds position p to the match finder and, unless skip, appends
// its matches to e.matches; it returns the longest match length.
func (e *Encoder) search(src []byte, p int, skip bool) int {
	limit := min(len(src)-p, e.p.Nice)
	if limit < 4 || e.blockEnd-p < minMatch {
		return 0
	}
	if skip {
		if e.p.Rows > 0 {
			e.rowInsert(src, p)
		} else if !e.p.NoSkipInsert {
			e.bt(src, p, limit, false, minMatch-1)
		}
		return 0
	}
	return e.find(src, p, limit)
}

// greedy parses src[start:end] taking at each position the longest of
// the stored and repeat matches, into e.seqs and e.lits.
func (e *Encoder) greedy(src []byte, start, end int, reps [3]uint32) {
	seqs := e.seqs[:0]
	lits := e.lits[:0]
	lit0 := start
	for p := start; p < end; {
		i := p - start
		ll0 := p == lit0
		bestLen, bestOv := uint32(0), uint32(0)
		for k := 0; k < 3; k++ {
			off := repOffset(reps, k, ll0)
			if off == 0 || int(off) > p {
				continue
			}
			if l := uint32(matchLen(src[p-int(off):], src[p:end])); l > bestLen {
				bestLen, bestOv = l, uint32(k+1)
			}
		}
		if ms := e.matches[e.mstart[i]:e.mstart[i+1]]; len(ms) > 0 {
			if m := ms[len(ms)-1]; m.len > bestLen+1 {
				bestLen, bestOv = m.len, offsetValue(reps, m.off, ll0)
			}
		}
		if bestLen < minMatch+1 {
			p++
			continue
		}
		lits = append(lits, src[lit0:p]...)
		seqs = append(seqs, seq{litLen: uint32(p - lit0), matchLen: bestLen, offVal: bestOv})
		reps = updateReps(reps, bestOv, ll0)
		p += int(bestLen)
		lit0 = p
	}
	lits = append(lits, src[lit0:end]...)
	e.seqs, e.lits = seqs, lits
}

// setPrices prices symbols by their frequencies in a parse.
func (e *Encoder) setPrices(seqs []seq, lits []byte) {
	pr := &e.prices
	var lh [256]uint32
	for _, b := range lits {
		lh[b]++
	}
	setFromHist(pr.lit[:], lh[:], litMaxBit)
	var llH [36]uint32
	var mlH [53]uint32
	var ofH [maxOfCode + 1]uint32
	for _, s := range seqs {
		llH[llCode(s.litLen)]++
		mlH[mlCode(s.matchLen)]++
		ofH[ofCode(s.offVal)]++
	}
	setFromHist(pr.ll[:], llH[:], llMaxLog)
	setFromHist(pr.ml[:], mlH[:], mlMaxLog)
	setFromHist(pr.of[:], ofH[:], ofMaxLog)
}

// optimal finds the cheapest parse of src[start:end] under e.prices,
// with the stored matches or, if live, searching each position itself.
func (e *Encoder) optimal(src []byte, start, end int, reps [3]uint32, live bool) {
	n := end - start
	if cap(e.nodes) < n+1 {
		e.nodes = make([]node, n+1)
	}
	nodes := e.nodes[:n+1]
	e.nodes = nodes
	for i := range nodes {
		nodes[i].price = infPrice
	}
	pr := &e.prices
	// Match length prices up to the nice length (beyond it only one
	// length per match is tried).
	nice := uint32(e.p.Nice)
	mlp := e.mlp[:0]
	for L := uint32(0); L <= nice; L++ {
		if L < minMatch {
			mlp = append(mlp, 0)
			continue
		}
		mc := mlCode(L)
		mlp = append(mlp, pr.ml[mc]+int32(mlBits[mc])<<8+pr.ll[0])
	}
	e.mlp = mlp
	var llp [64]int32
	for l := range llp {
		llp[l] = pr.llPrice(uint32(l))
	}
	nodes[0] = node{price: llp[0]}
	if cap(e.reps) < n+1 {
		e.reps = make([][3]uint32, n+1)
	}
	e.reps = e.reps[:n+1]
	skipUntil := start
	var ms []match
	cheap := false
	for i := 0; i < n; i++ {
		if live {
			p := start + i
			e.matches = e.matches[:0]
			skip := p < skipUntil
			cheap = !skip && e.p.Prune > 0 && nodes[i+1].price <= nodes[i].price+int32(e.p.Prune)
			if best := e.search(src, p, skip || cheap); best >= e.p.Nice {
				skipUntil = p + best
			}
			if skip {
				continue
			}
			ms = e.matches
		} else {
			if e.skip[i] {
				continue
			}
			ms = e.matches[e.mstart[i]:e.mstart[i+1]]
		}
		cur := &nodes[i]
		if cur.price >= infPrice {
			continue
		}
		creps := e.repsAt(i, reps)
		e.reps[i] = creps
		abs := start + i
		base := cur.price
		ll := cur.litLen
		var inc int32
		if ll < 63 {
			inc = llp[ll+1] - llp[ll]
		} else {
			inc = pr.llPrice(ll+1) - pr.llPrice(ll)
		}
		if lp := base + pr.lit[src[abs]] + inc; lp < nodes[i+1].price {
			nodes[i+1] = node{price: lp, litLen: ll + 1}
		}
		if cheap {
			continue
		}
		a := src[abs:end]
		ll0 := ll == 0
		for k := 0; k < 3; k++ {
			off := repOffset(creps, k, ll0)
			if off == 0 || int(off) > abs {
				continue
			}
			if len(a) < 4 || binary.LittleEndian.Uint32(src[abs-int(off):]) != binary.LittleEndian.Uint32(a) {
				if len(a) < minMatch || src[abs-int(off)] != a[0] || src[abs-int(off)+1] != a[1] || src[abs-int(off)+2] != a[2] {
					continue
				}
			}
			if l := uint32(matchLen(src[abs-int(off):], a)); l >= minMatch {
				e.relax(nodes, i, base, uint32(k+1), minMatch, l)
			}
		}
		prev := uint32(minMatch)
		for _, m := range ms {
			e.relax(nodes, i, base, offsetValue(creps, m.off, ll0), prev, m.len)
			prev = m.len + 1
		}
	}
}

// relax offers the nodes i+from..i+to the match coded ov from node i
// (price base). A match
// of the nice length or more is offered at its full length only, and of
// the other lengths only the Tail longest.
func (e *Encoder) relax(nodes []node, i int, base int32, ov, from, to uint32) {
	pr := &e.prices
	oc := ofCode(ov)
	op := base + pr.of[oc] + int32(oc)<<8
	if to >= uint32(e.p.Nice) {
		L := to
		mc := mlCode(L)
		if p := op + pr.ml[mc] + int32(mlBits[mc])<<8 + pr.ll[0]; p < nodes[i+int(L)].price {
			nodes[i+int(L)] = node{price: p, mlen: L, offVal: ov}
		}
		return
	}
	if tail := uint32(e.p.Tail); to-from >= tail {
		from = to - tail + 1
	}
	mlp := e.mlp[:to+1]
	for L := from; L <= to; L++ {
		if p := op + mlp[L]; p < nodes[i+int(L)].price {
			nodes[i+int(L)] = node{price: p, mlen: L, offVal: ov}
		}
	}
}

// repsAt returns the repeat offsets after the cheapest path to node i,
// from those of its predecessor (reps0 at the start of the block).
func (e *Encoder) repsAt(i int, reps0 [3]uint32) [3]uint32 {
	if i == 0 {
		return reps0
	}
	nd := &e.nodes[i]
	if nd.mlen == 0 {
		return e.reps[i-1]
	}
	j := i - int(nd.mlen)
	return updateReps(e.reps[j], nd.offVal, e.nodes[j].litLen == 0)
}

// backtrack turns the cheapest path to the end of the block into
// sequences and literals.
func (e *Encoder) backtrack(src []byte, start, end int) ([]seq, []byte) {
	nodes := e.nodes
	path := e.path[:0]
	for j := end - start; j > 0; {
		if m := nodes[j].mlen; m > 0 {
			path = append(path, int32(j))
			j -= int(m)
		} else {
			j--
		}
	}
	e.path = path
	seqs := e.seqs[:0]
	lits := e.lits[:0]
	pos := 0
	for k := len(path) - 1; k >= 0; k-- {
		j := int(path[k])
		nd := &nodes[j]
		ms := j - int(nd.mlen)
		lits = append(lits, src[start+pos:start+ms]...)
		seqs = append(seqs, seq{litLen: uint32(ms - pos), matchLen: nd.mlen, offVal: nd.offVal})
		pos = j
	}
	lits = append(lits, src[start+pos:end]...)
	e.seqs, e.lits = seqs, lits
	return seqs, lits
}
